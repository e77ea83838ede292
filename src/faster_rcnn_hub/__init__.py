"""faster-rcnn-hub: mmdetection's Faster R-CNN checkpoints with nothing but PyTorch, torchvision and transformers.

Importing the package registers the model with transformers' Auto classes, so that
`AutoModelForObjectDetection`, `AutoImageProcessor` and `pipeline("object-detection")` load converted folders.
"""

import logging

from transformers import AutoConfig, AutoImageProcessor, AutoModelForObjectDetection

from .configuration_faster_rcnn import FasterRCNNConfig
from .errors import (
    CheckpointError,
    FasterRCNNHubError,
    InvalidConfigError,
    InvalidImageError,
    MMDetConfigError,
    UnsupportedArchitectureError,
)
from .image_io import load_image
from .image_processing_faster_rcnn import FasterRCNNImageProcessor
from .modeling_faster_rcnn import (
    FasterRCNNForObjectDetection,
    FasterRCNNObjectDetectionOutput,
    FasterRCNNPreTrainedModel,
)

__version__ = "0.1.0"

AutoConfig.register(FasterRCNNConfig.model_type, FasterRCNNConfig, exist_ok=True)
AutoModelForObjectDetection.register(FasterRCNNConfig, FasterRCNNForObjectDetection, exist_ok=True)
AutoImageProcessor.register(
    FasterRCNNConfig,
    image_processor_classes={"torchvision": FasterRCNNImageProcessor, "pil": FasterRCNNImageProcessor},
    exist_ok=True,
)



class _HideUnlistedModelError(logging.Filter):
    """transformers' pipeline logs an error for every model class missing from its built-in table, even for
    classes registered with the Auto classes as this one is; that error would only mislead users."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"'{FasterRCNNForObjectDetection.__name__}' is not supported for" not in record.getMessage()


logging.getLogger("transformers.pipelines.base").addFilter(_HideUnlistedModelError())

__all__ = [
    "CheckpointError",
    "FasterRCNNConfig",
    "FasterRCNNForObjectDetection",
    "FasterRCNNHubError",
    "FasterRCNNImageProcessor",
    "FasterRCNNObjectDetectionOutput",
    "FasterRCNNPreTrainedModel",
    "InvalidConfigError",
    "InvalidImageError",
    "MMDetConfigError",
    "UnsupportedArchitectureError",
    "load_image",
]
