"""Exceptions raised by faster-rcnn-hub.

Every refusal of bad input is a `ValueError` subclass (`FasterRCNNHubError`), so callers that already catch
`ValueError` keep working, while callers that want to tell an unreadable image from a bad checkpoint can catch the
precise class. The model code's own exceptions (images, settings, annotations) are defined with the model, which a
converted folder carries, and are the same classes here.
"""

from .models.faster_rcnn.errors import (
    FasterRCNNHubError,
    InvalidAnnotationError,
    InvalidConfigError,
    InvalidImageError,
    NonFiniteFeaturesError,
    WeightsMismatchError,
)


class CheckpointError(FasterRCNNHubError):
    """A checkpoint file cannot be read safely or does not fit the architecture."""


class MMDetConfigError(FasterRCNNHubError):
    """An mmdetection config (file or embedded text) cannot be parsed or describes something unsupported."""


class UnsupportedArchitectureError(MMDetConfigError):
    """The mmdetection config describes a model this package cannot run (yet)."""


class MissingDependencyError(FasterRCNNHubError):
    """A feature needs an optional dependency (an extra such as `[demo]`) that is not installed."""


class ModelNotFoundError(FasterRCNNHubError):
    """A model folder or Hub id given on the command line cannot be found or is not a model."""


class NoImagesFoundError(FasterRCNNHubError):
    """A folder or glob pattern given as input matched no image file."""


class PredictionOutputError(FasterRCNNHubError):
    """The output of `predict` cannot be written or resumed (a folder, or an existing file that is not JSON lines)."""


__all__ = [
    "CheckpointError",
    "FasterRCNNHubError",
    "InvalidAnnotationError",
    "InvalidConfigError",
    "InvalidImageError",
    "MMDetConfigError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "NoImagesFoundError",
    "NonFiniteFeaturesError",
    "PredictionOutputError",
    "UnsupportedArchitectureError",
    "WeightsMismatchError",
]
