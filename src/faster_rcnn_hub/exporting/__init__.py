"""Exporting a converted model for other runtimes: one ONNX graph from padded pixels to final detections, and
the same graph as OpenVINO IR."""

from .export_model import EXPORT_FORMATS, export
from .onnx_export import MIN_OPSET, check_exportable, export_onnx
from .openvino_export import export_openvino

__all__ = ["EXPORT_FORMATS", "MIN_OPSET", "check_exportable", "export", "export_onnx", "export_openvino"]
