"""Which runtime runs which export format."""

from __future__ import annotations

import os

from ..errors import FasterRCNNHubError
from .export_folder import ExportedModelFolder
from .exported_detector import ExportedDetector

# backend name -> the export format it runs
BACKEND_FORMATS = {"onnxruntime": "onnx", "openvino": "openvino"}


def open_exported(folder: str | os.PathLike, backend: str | None = None) -> ExportedDetector:
    """The detector of an export folder: `backend` (`"onnxruntime"` or `"openvino"`), or by default the runtime of
    the folder's format."""
    if backend is not None and backend not in BACKEND_FORMATS:
        raise FasterRCNNHubError(f"backend must be one of {sorted(BACKEND_FORMATS)}, got {backend!r}.")
    if backend is None:
        export_format = ExportedModelFolder.read(folder).format
        backend = next(name for name, runs in BACKEND_FORMATS.items() if runs == export_format)
    if backend == "openvino":
        from .openvino_detector import OpenVinoDetector

        return OpenVinoDetector(folder)
    from .onnx_detector import OnnxDetector

    return OnnxDetector(folder)


__all__ = ["BACKEND_FORMATS", "open_exported"]
