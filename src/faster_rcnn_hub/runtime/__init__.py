"""Running exported models without PyTorch: ONNX Runtime or OpenVINO, NumPy, Pillow and OpenCV only.

Nothing in this part imports torch (tests/test_onnx_runtime.py runs it where torch cannot be imported). The
preprocessing is the image processor's, reimplemented in NumPy operation for operation so that its pixels are the
same bit for bit; the detections have the `Detector`'s format.
"""

from .backends import BACKEND_FORMATS, open_exported
from .export_folder import EXPORT_METADATA_FILE, ONNX_MODEL_FILE, ExportedModelFolder
from .exported_detector import ExportedDetector
from .onnx_detector import OnnxDetector
from .openvino_detector import OpenVinoDetector
from .preprocessing import PreparedImage, Preprocessor

__all__ = [
    "BACKEND_FORMATS",
    "EXPORT_METADATA_FILE",
    "ONNX_MODEL_FILE",
    "ExportedDetector",
    "ExportedModelFolder",
    "OnnxDetector",
    "OpenVinoDetector",
    "PreparedImage",
    "Preprocessor",
    "open_exported",
]
