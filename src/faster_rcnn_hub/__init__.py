"""faster-rcnn-hub: mmdetection's Faster R-CNN checkpoints with nothing but PyTorch, torchvision and transformers.

Importing the package loads no torch: the model classes below load on first use. The model is registered with
transformers' Auto classes as soon as transformers loads them (see `registration.py`), so that after
`import faster_rcnn_hub`, `AutoModelForObjectDetection`, `AutoImageProcessor` and `pipeline("object-detection")`
load converted folders.
"""

from typing import TYPE_CHECKING

from .errors import (
    CheckpointError,
    FasterRCNNHubError,
    InvalidConfigError,
    InvalidImageError,
    MMDetConfigError,
    UnsupportedArchitectureError,
)
from .lazy_exports import lazy_exports
from .registration import register_when_loaded

__version__ = "0.1.0"

_MODEL = ".models.faster_rcnn"
_LAZY_EXPORTS = {
    "FasterRCNNConfig": f"{_MODEL}.configuration_faster_rcnn",
    "FasterRCNNForObjectDetection": f"{_MODEL}.modeling_faster_rcnn",
    "FasterRCNNObjectDetectionOutput": f"{_MODEL}.modeling_faster_rcnn",
    "FasterRCNNPreTrainedModel": f"{_MODEL}.modeling_faster_rcnn",
    "FasterRCNNImageProcessor": f"{_MODEL}.image_processing_faster_rcnn",
    "load_image": f"{_MODEL}.image_io",
    "Detector": ".detection",
    "export": ".exporting",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY_EXPORTS)

if TYPE_CHECKING:
    from .detection import Detector
    from .exporting import export
    from .models.faster_rcnn.configuration_faster_rcnn import FasterRCNNConfig
    from .models.faster_rcnn.image_io import load_image
    from .models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor
    from .models.faster_rcnn.modeling_faster_rcnn import (
        FasterRCNNForObjectDetection,
        FasterRCNNObjectDetectionOutput,
        FasterRCNNPreTrainedModel,
    )

register_when_loaded()

__all__ = [
    "CheckpointError",
    "Detector",
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
    "export",
    "load_image",
]
