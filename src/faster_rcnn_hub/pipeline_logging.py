"""Silencing a misleading error that transformers' `pipeline` logs for this model.

`pipeline("object-detection")` logs an error for every model class missing from transformers' built-in table,
even for classes registered with the Auto classes or loaded as remote code, as this one is; the model works,
so that error would only mislead. This lives beside the model code so that remote-code loads install it too.
"""

from __future__ import annotations

import logging

_MODEL_CLASS_NAME = "FasterRCNNForObjectDetection"


class _HideUnlistedModelError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return f"'{_MODEL_CLASS_NAME}' is not supported for" not in record.getMessage()


def hide_unlisted_model_error() -> None:
    """Install the filter on transformers' pipeline logger (once, however often this is called)."""
    logger = logging.getLogger("transformers.pipelines.base")
    if not any(type(existing).__name__ == _HideUnlistedModelError.__name__ for existing in logger.filters):
        logger.addFilter(_HideUnlistedModelError())
