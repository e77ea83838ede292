"""Running exported models without PyTorch: ONNX Runtime, NumPy, Pillow and OpenCV only.

Nothing in this part imports torch (tests/test_onnx_runtime.py runs it where torch cannot be imported). The
preprocessing is the image processor's, reimplemented in NumPy operation for operation so that its pixels are the
same bit for bit; the detections have the `Detector`'s format.
"""

from .export_folder import EXPORT_METADATA_FILE, ONNX_MODEL_FILE, ExportedModelFolder
from .onnx_detector import OnnxDetector
from .preprocessing import PreparedImage, Preprocessor

__all__ = [
    "EXPORT_METADATA_FILE",
    "ONNX_MODEL_FILE",
    "ExportedModelFolder",
    "OnnxDetector",
    "PreparedImage",
    "Preprocessor",
]
