"""Registering the model with transformers' Auto classes, and the training losses with the model, without loading
either before it is needed.

`import faster_rcnn_hub` loads no torch (the command line starts in a fraction of a second), yet after it
`AutoConfig`, `AutoModelForObjectDetection`, `AutoImageProcessor` and `pipeline("object-detection")` must know
`model_type="faster_rcnn"`. So each registration waits for the transformers modules it needs and runs as soon as
they have finished loading, or at once if they already have (`import_hooks.when_imported`).

The training losses live in `faster_rcnn_hub.training`, which the model code (copied into every converted folder)
does not import; they are installed into the model code when it loads, and import the training code only when a
forward with `labels` first needs it.
"""

from __future__ import annotations

import inspect
from typing import Any

from .import_hooks import when_imported

MODEL_PACKAGE = "faster_rcnn_hub.models.faster_rcnn"
CONFIG_MODULE = f"{MODEL_PACKAGE}.configuration_faster_rcnn"
MODELING_MODULE = f"{MODEL_PACKAGE}.modeling_faster_rcnn"
PROCESSOR_MODULE = f"{MODEL_PACKAGE}.image_processing_faster_rcnn"

_AUTO_CONFIG_MODULES = ("transformers.configuration_utils", "transformers.models.auto.configuration_auto")
# A registration runs once its Auto class's module has loaded. The base module our classes derive from is only
# waited for while it is loading: transformers 5 imports the Auto module from inside it (before it defines the base
# class), transformers 4 loads the Auto module alone and the base module only when a model is built.
_AUTO_MODEL_MODULES = ("transformers.models.auto.modeling_auto",)
_MODEL_BASE_MODULE = "transformers.modeling_utils"
_AUTO_PROCESSOR_MODULES = ("transformers.models.auto.image_processing_auto",)
_PROCESSOR_BASE_MODULE = "transformers.image_processing_utils"


def register_config() -> None:
    """`AutoConfig` knows `model_type="faster_rcnn"`."""
    from transformers.models.auto.configuration_auto import AutoConfig

    from .models.faster_rcnn.configuration_faster_rcnn import FasterRCNNConfig

    AutoConfig.register(FasterRCNNConfig.model_type, FasterRCNNConfig, exist_ok=True)


def register_model() -> None:
    """`AutoModelForObjectDetection` (and so `pipeline("object-detection")`) builds `FasterRCNNForObjectDetection`;
    so do `AutoModelForImageSegmentation` and `AutoModelForInstanceSegmentation`, for a Mask R-CNN's
    `pipeline("image-segmentation")`."""
    from transformers.models.auto.modeling_auto import (
        AutoModelForImageSegmentation,
        AutoModelForInstanceSegmentation,
        AutoModelForObjectDetection,
    )

    from .models.faster_rcnn.configuration_faster_rcnn import FasterRCNNConfig
    from .models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection

    for auto_class in (AutoModelForObjectDetection, AutoModelForImageSegmentation, AutoModelForInstanceSegmentation):
        auto_class.register(FasterRCNNConfig, FasterRCNNForObjectDetection, exist_ok=True)


def register_processor() -> None:
    """`AutoImageProcessor` builds `FasterRCNNImageProcessor` for a Faster R-CNN config."""
    from transformers.models.auto.image_processing_auto import AutoImageProcessor

    from .models.faster_rcnn.configuration_faster_rcnn import FasterRCNNConfig
    from .models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor

    if "image_processor_classes" in inspect.signature(AutoImageProcessor.register).parameters:
        # transformers 5.1 and later: one class per image backend
        classes = {"torchvision": FasterRCNNImageProcessor, "pil": FasterRCNNImageProcessor}
        AutoImageProcessor.register(FasterRCNNConfig, image_processor_classes=classes, exist_ok=True)
    else:
        # transformers 4.x and 5.0: a "slow" (NumPy/PyTorch) and a "fast" (torchvision) class; this is the former
        AutoImageProcessor.register(FasterRCNNConfig, slow_image_processor_class=FasterRCNNImageProcessor, exist_ok=True)


def install_training_losses() -> None:
    """A forward with `labels` computes mmdetection's training losses (see `training/detection_loss.py`)."""
    from .models.faster_rcnn.modeling_faster_rcnn import set_training_loss_function

    set_training_loss_function(_training_losses)


def _training_losses(model: Any, pyramid: Any, image_sizes: Any, labels: Any, proposals: Any = None) -> Any:
    from .training.detection_loss import forward_losses

    return forward_losses(model, pyramid, image_sizes, labels, proposals)


def register_when_loaded() -> None:
    """Schedule every registration; each runs once what it needs has loaded (called by `import faster_rcnn_hub`)."""
    when_imported([MODELING_MODULE], install_training_losses, description="install the training losses")
    when_imported(
        _AUTO_CONFIG_MODULES, register_config, waits_for=[CONFIG_MODULE], description="register the config"
    )
    when_imported(
        _AUTO_CONFIG_MODULES + _AUTO_MODEL_MODULES,
        register_model,
        waits_for=[CONFIG_MODULE, MODELING_MODULE, _MODEL_BASE_MODULE],
        description="register the model with transformers' AutoModelForObjectDetection",
    )
    when_imported(
        _AUTO_CONFIG_MODULES + _AUTO_PROCESSOR_MODULES,
        register_processor,
        waits_for=[CONFIG_MODULE, PROCESSOR_MODULE, _PROCESSOR_BASE_MODULE],
        description="register the image processor with transformers' AutoImageProcessor",
    )


__all__ = [
    "install_training_losses",
    "register_config",
    "register_model",
    "register_processor",
    "register_when_loaded",
]
