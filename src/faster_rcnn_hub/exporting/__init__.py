"""Exporting a converted model for other runtimes: one ONNX graph from padded pixels to final detections, and
the same graph as OpenVINO IR or a `torch.export` program."""

from .export_model import EXPORT_FORMATS, PROGRAM_FILE, export
from .onnx_export import MIN_OPSET, check_exportable, export_onnx
from .openvino_export import export_openvino
from .program_export import export_program

__all__ = [
    "EXPORT_FORMATS",
    "MIN_OPSET",
    "PROGRAM_FILE",
    "check_exportable",
    "export",
    "export_onnx",
    "export_openvino",
    "export_program",
]
