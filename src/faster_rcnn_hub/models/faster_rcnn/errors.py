"""The exceptions the model code raises on bad input.

Every refusal of bad input is a `ValueError` subclass, so callers that already catch `ValueError` keep working,
while callers that want to tell an unreadable image from a bad setting can catch the precise class. The rest of
the package derives its own exceptions (checkpoints, downloads, ...) from `FasterRCNNHubError` in
`faster_rcnn_hub.errors`; these live here because a converted folder's model code raises them too.
"""


class FasterRCNNHubError(ValueError):
    """Base class of every input error this package raises on purpose."""


class InvalidImageError(FasterRCNNHubError):
    """An image (file, array or tensor) cannot be used as model input."""


class InvalidConfigError(FasterRCNNHubError):
    """A `FasterRCNNConfig` or processor setting is out of range or of the wrong type."""


class WeightsMismatchError(FasterRCNNHubError):
    """A model folder's weights do not fit its config: a tensor is missing, extra, or of the wrong shape."""


class NonFiniteFeaturesError(FasterRCNNHubError):
    """The network computed infinite or NaN features from finite input (float16 overflow, or broken weights)."""


class InvalidAnnotationError(FasterRCNNHubError):
    """Training labels or a COCO annotation file cannot be used (wrong shape, class out of range, bad JSON)."""


__all__ = [
    "FasterRCNNHubError",
    "InvalidAnnotationError",
    "InvalidConfigError",
    "InvalidImageError",
    "NonFiniteFeaturesError",
    "WeightsMismatchError",
]
