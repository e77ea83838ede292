"""`torch.export` of the detector with dynamic height and width: an `ExportedProgram` saved as `model.pt2`."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection
from .onnx_export import check_exportable, example_inputs
from .onnx_graph import ExportableDetector

# The largest padded side the program accepts (the default canvas is 1344).
MAX_SIDE = 4096


def export_program(model: FasterRCNNForObjectDetection, path: Path, size_divisor: int = 32) -> Path:
    """Export `model` with `torch.export.export` and save the program to `path` (`torch.export.save`).

    The program is `ExportableDetector`'s function of one image, `(pixel_values, image_size, rescale_factor) ->
    (boxes, scores, labels)`, for any padded height and width that are multiples of `size_divisor` (the image
    processor's `pad_size_divisor`) up to `MAX_SIDE`. Load it with `torch.export.load(path).module()`.
    """
    check_exportable(model.config)
    model = model.float().eval().enable_fused_inference(False)
    graph = ExportableDetector(model).eval()
    height = torch.export.Dim("height_blocks", min=2, max=MAX_SIDE // size_divisor)
    width = torch.export.Dim("width_blocks", min=2, max=MAX_SIDE // size_divisor)
    with warnings.catch_warnings(), torch.no_grad():
        # torchvision's fake NMS kernel warns about a renamed torch function; nothing to act on here.
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.export.export(
            graph,
            example_inputs(),
            dynamic_shapes=({2: size_divisor * height, 3: size_divisor * width}, None, None),
            strict=False,
        )
    torch.export.save(program, str(path))
    return path


__all__ = ["MAX_SIDE", "export_program"]
