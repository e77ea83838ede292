"""Exceptions raised by faster-rcnn-hub.

Every refusal of bad input is a `ValueError` subclass, so callers that already catch `ValueError` keep
working, while callers that want to tell an unreadable image from a bad checkpoint can catch the precise
class.
"""


class FasterRCNNHubError(ValueError):
    """Base class of every input error this package raises on purpose."""


class InvalidImageError(FasterRCNNHubError):
    """An image (file, array or tensor) cannot be used as model input."""


class InvalidConfigError(FasterRCNNHubError):
    """A `FasterRCNNConfig` or processor setting is out of range or of the wrong type."""


class CheckpointError(FasterRCNNHubError):
    """A checkpoint file cannot be read safely or does not fit the architecture."""


class MMDetConfigError(FasterRCNNHubError):
    """An mmdetection config (file or embedded text) cannot be parsed or describes something unsupported."""


class UnsupportedArchitectureError(MMDetConfigError):
    """The mmdetection config describes a model this package cannot run (yet)."""


class MissingDependencyError(FasterRCNNHubError):
    """A feature needs an optional dependency (an extra such as `[demo]`) that is not installed."""


class InvalidAnnotationError(FasterRCNNHubError):
    """Training labels or a COCO annotation file cannot be used (wrong shape, class out of range, bad JSON)."""


class ModelNotFoundError(FasterRCNNHubError):
    """A model folder or Hub id given on the command line cannot be found or is not a model."""


class NoImagesFoundError(FasterRCNNHubError):
    """A folder or glob pattern given as input matched no image file."""


class PredictionOutputError(FasterRCNNHubError):
    """The output of `predict` cannot be written or resumed (a folder, or an existing file that is not JSON lines)."""
