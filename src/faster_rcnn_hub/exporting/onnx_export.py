"""Tracing `ExportableDetector` into an ONNX file with dynamic height and width."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import FasterRCNNHubError, MissingDependencyError
from ..models.faster_rcnn.configuration_faster_rcnn import FasterRCNNConfig
from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection
from .batched_graph import BatchedExportableDetector
from .onnx_graph import ExportableDetector

# `RoiAlign`'s `coordinate_transformation_mode="half_pixel"` (mmdetection's `aligned=True`) arrived in opset 16.
MIN_OPSET = 16
DEFAULT_OPSET = 17
INPUT_NAMES = ["pixel_values", "image_size", "rescale_factor"]
OUTPUT_NAMES = ["boxes", "scores", "labels"]
# Exports of several images per run also give each detection's image (`BatchedExportableDetector`).
BATCH_OUTPUT_NAMES = [*OUTPUT_NAMES, "batch_index"]
# `--batch dynamic`: any number of images (of one padded size) per run.
DYNAMIC_BATCH = "dynamic"
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


def batch_example_inputs(batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`example_inputs` for `batch` images of one padded size, each with its own (smaller) resized size."""
    generator = torch.Generator().manual_seed(0)
    height, width = _EXAMPLE_SIZE
    sizes = [[height - 8 * index, width - 12 * index] for index in range(batch)]
    return (
        torch.randn((batch, 3, height, width), generator=generator),
        torch.tensor(sizes, dtype=torch.int64),
        torch.ones((batch, 2), dtype=torch.float32),
    )


def check_batch(batch: int | str) -> None:
    """Raise `FasterRCNNHubError` unless `batch` is a positive integer or `"dynamic"`."""
    if batch == DYNAMIC_BATCH:
        return
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise FasterRCNNHubError(
            f"--batch must be a positive integer (images per run) or {DYNAMIC_BATCH!r} (any number), got {batch!r}."
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


def export_onnx(
    model: FasterRCNNForObjectDetection, path: Path, opset: int = DEFAULT_OPSET, batch: int | str = 1
) -> Path:
    """Write `model` as one ONNX graph to `path` (a `.onnx` file), for images of any height and width.

    Args:
        model: The detector; it is put in eval mode and its unfused path is traced (ONNX Runtime folds the
            BatchNorms itself).
        path: The file to write.
        opset: ONNX opset, at least `MIN_OPSET`.
        batch: Images per run: 1 (`ExportableDetector`: inputs of one image, outputs `OUTPUT_NAMES`), another
            count or `"dynamic"` (`BatchedExportableDetector`: images of one padded size with a leading batch
            dimension, outputs `BATCH_OUTPUT_NAMES`).

    Returns:
        `path`.
    """
    check_opset(opset)
    check_batch(batch)
    check_exportable(model.config)
    import_onnx()
    model = model.float().eval().enable_fused_inference(False)
    dynamic_axes = {"pixel_values": {2: "height", 3: "width"}}
    if batch == 1:
        graph = ExportableDetector(model).eval()
        example = example_inputs()
        output_names = OUTPUT_NAMES
    else:
        graph = BatchedExportableDetector(model).eval()
        example = batch_example_inputs(2 if batch == DYNAMIC_BATCH else batch)
        output_names = BATCH_OUTPUT_NAMES
        if batch == DYNAMIC_BATCH:
            dynamic_axes = {
                "pixel_values": {0: "batch", 2: "height", 3: "width"},
                "image_size": {0: "batch"},
                "rescale_factor": {0: "batch"},
            }
    dynamic_axes.update({name: {0: "detections"} for name in output_names})
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
            output_names=output_names,
            dynamic_axes=dynamic_axes,
        )
    return path


__all__ = [
    "BATCH_OUTPUT_NAMES",
    "DEFAULT_OPSET",
    "DYNAMIC_BATCH",
    "batch_example_inputs",
    "check_batch",
    "INPUT_NAMES",
    "MIN_OPSET",
    "OUTPUT_NAMES",
    "check_exportable",
    "example_inputs",
    "export_onnx",
]
