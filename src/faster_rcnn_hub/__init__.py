"""faster-rcnn-hub: mmdetection's Faster R-CNN checkpoints with nothing but PyTorch, torchvision and transformers.

Importing the package registers the model with transformers' Auto classes, so that
`AutoModelForObjectDetection`, `AutoImageProcessor` and `pipeline("object-detection")` load converted folders.
"""

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
