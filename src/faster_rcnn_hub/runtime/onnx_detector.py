"""Detections from an exported ONNX model with ONNX Runtime: the `Detector`'s results without PyTorch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import MissingDependencyError
from .export_folder import ONNX_MODEL_FILE
from .exported_detector import ExportedDetector


def import_onnxruntime() -> Any:
    """The `onnxruntime` module, or a `MissingDependencyError` naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError as error:
        raise MissingDependencyError(
            "Running an exported model needs ONNX Runtime: pip install 'faster-rcnn-hub[export]' "
            "(or onnxruntime)."
        ) from error
    return onnxruntime


class OnnxDetector(ExportedDetector):
    """An ONNX export folder (`faster-rcnn-hub export ... --format onnx`) in an ONNX Runtime session.

    Args:
        folder: The export folder.
        providers: ONNX Runtime execution providers (default: the CPU's).
        threads: Intra-op threads (default: ONNX Runtime's choice, one per core).

    Example:

    ```python
    >>> from faster_rcnn_hub.runtime import OnnxDetector
    >>> detector = OnnxDetector("exported/")
    >>> detector.detect("image.jpg", threshold=0.5)
    [{'label': 'person', 'label_id': 0, 'score': 0.98, 'box': [12.0, 30.5, 200.1, 388.0]}, ...]
    ```
    """

    format = "onnx"

    def __init__(
        self, folder: str | os.PathLike, providers: Sequence[str] | None = None, threads: int | None = None
    ) -> None:
        super().__init__(folder)
        onnxruntime = import_onnxruntime()
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(self.folder.path / ONNX_MODEL_FILE), options, providers=list(providers or ["CPUExecutionProvider"])
        )

    def run_graph(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.output_names, inputs)


__all__ = ["OnnxDetector", "import_onnxruntime"]
