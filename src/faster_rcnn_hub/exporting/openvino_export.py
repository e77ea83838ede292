"""OpenVINO IR from the exported ONNX graph."""

from __future__ import annotations

from pathlib import Path

from ..errors import MissingDependencyError


def export_openvino(onnx_path: Path, xml_path: Path) -> Path:
    """Convert the ONNX file at `onnx_path` into OpenVINO IR at `xml_path` (and its `.bin` weights beside it).

    Shapes stay dynamic (height and width, as in the ONNX graph). The weights are saved in float32:
    `openvino.save_model` halves them to float16 by default, which moves boxes by a tenth of a pixel.
    """
    try:
        import openvino
    except ImportError as error:
        raise MissingDependencyError(
            "Exporting to OpenVINO needs OpenVINO: pip install 'faster-rcnn-hub[export]' (or openvino)."
        ) from error
    model = openvino.convert_model(str(onnx_path))
    openvino.save_model(model, str(xml_path), compress_to_fp16=False)
    return xml_path


__all__ = ["export_openvino"]
