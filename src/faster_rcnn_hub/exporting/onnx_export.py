"""Tracing `ExportableDetector` into an ONNX file with dynamic height and width."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import FasterRCNNHubError, MissingDependencyError
from ..models.faster_rcnn.configuration_faster_rcnn import FasterRCNNConfig
from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection
from .onnx_graph import ExportableDetector

# `RoiAlign`'s `coordinate_transformation_mode="half_pixel"` (mmdetection's `aligned=True`) arrived in opset 16.
MIN_OPSET = 16
DEFAULT_OPSET = 17
INPUT_NAMES = ["pixel_values", "image_size", "rescale_factor"]
OUTPUT_NAMES = ["boxes", "scores", "labels"]
# The example the graph is traced with: its values and size do not matter (every size-dependent step is a graph
# operation), but noise gives the RPN proposals so that every branch of the trace is the general one.
_EXAMPLE_SIZE = (320, 448)


def example_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded noise of `_EXAMPLE_SIZE`, its size and a unit rescale factor: the inputs exports are traced with."""
    generator = torch.Generator().manual_seed(0)
    return (
        torch.randn((1, 3, *_EXAMPLE_SIZE), generator=generator),
        torch.tensor(_EXAMPLE_SIZE, dtype=torch.int64),
        torch.tensor([1.0, 1.0], dtype=torch.float32),
    )


def check_exportable(config: FasterRCNNConfig) -> None:
    """Raise `FasterRCNNHubError` naming the setting if the model cannot be one standard ONNX graph."""
    if config.rcnn_nms_type == "soft_nms":
        raise FasterRCNNHubError(
            "This model's box head uses soft-NMS (config.rcnn_nms_type='soft_nms'), which has no standard ONNX "
            "operator (ONNX's NonMaxSuppression drops boxes, soft-NMS lowers their scores step by step); it cannot "
            "be exported. Models with rcnn_nms_type='nms' export."
        )
    if getattr(config, "mask_head", None) is not None:
        raise FasterRCNNHubError(
            "This is a Mask R-CNN (config.mask_head is set); the exported graph gives boxes only, so export covers "
            "box detectors (mask_head=null) so far. Run it with the PyTorch backend (Detector, detect, predict), "
            "which gives its masks."
        )
    if getattr(config, "cascade_stages", None):
        raise FasterRCNNHubError(
            f"This is a Cascade R-CNN (config.cascade_stages has {len(config.cascade_stages)} stages); export covers "
            "single-stage box heads only so far (cascade_stages=null). Run it with the PyTorch backend."
        )
    if config.proposal_source == "external":
        raise FasterRCNNHubError(
            "This model takes its proposals from outside (config.proposal_source='external', a Fast R-CNN); the "
            "exported graph computes its own with the RPN, so only models with proposal_source='rpn' export."
        )


def check_opset(opset: int) -> None:
    if not isinstance(opset, int) or isinstance(opset, bool) or opset < MIN_OPSET:
        raise FasterRCNNHubError(
            f"--opset must be an integer of at least {MIN_OPSET} (RoiAlign's half_pixel coordinates, which "
            f"mmdetection's aligned RoIAlign needs, arrived in opset 16), got {opset!r}."
        )


def import_onnx() -> None:
    """Check that the `onnx` package is there, or raise a `MissingDependencyError` naming the extra."""
    try:
        import onnx  # noqa: F401
    except ImportError as error:
        raise MissingDependencyError(
            "Exporting to ONNX needs the onnx package: pip install 'faster-rcnn-hub[export]'."
        ) from error


def export_onnx(model: FasterRCNNForObjectDetection, path: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write `model` as one ONNX graph to `path` (a `.onnx` file), for one image of any height and width.

    Args:
        model: The detector; it is put in eval mode and its unfused path is traced (ONNX Runtime folds the
            BatchNorms itself).
        path: The file to write.
        opset: ONNX opset, at least `MIN_OPSET`.

    Returns:
        `path`.
    """
    check_opset(opset)
    check_exportable(model.config)
    import_onnx()
    model = model.float().eval().enable_fused_inference(False)
    graph = ExportableDetector(model).eval()
    example = example_inputs()
    dynamic_axes = {"pixel_values": {2: "height", 3: "width"}}
    dynamic_axes.update({name: {0: "detections"} for name in OUTPUT_NAMES})
    with warnings.catch_warnings(), torch.no_grad():
        # The trace warns about every size it reads; those sizes are graph operations here, by design. The
        # TorchScript exporter also announces its deprecation: it is the one that exports torchvision's NMS and
        # RoIAlign with data-dependent shapes.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            graph,
            example,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_axes=dynamic_axes,
        )
    return path


__all__ = [
    "DEFAULT_OPSET",
    "INPUT_NAMES",
    "MIN_OPSET",
    "OUTPUT_NAMES",
    "check_exportable",
    "example_inputs",
    "export_onnx",
]
