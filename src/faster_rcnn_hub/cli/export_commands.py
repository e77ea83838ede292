"""The `export` command: a converted model into a folder that runs on ONNX Runtime (with or without PyTorch)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

# Repeated from exporting/ (which imports torch) so that building the parser stays cheap; test_export.py checks.
EXPORT_FORMATS = ("onnx", "openvino", "exported-program")
DEFAULT_OPSET = 17
QUANTIZE_CHOICES = ("int8",)


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add `export` to `commands` (argparse subparsers); returns its handler by name."""
    export = commands.add_parser(
        "export",
        help="export a model to ONNX or OpenVINO (one graph from padded pixels to detections, any image size)",
        description="Write OUTPUT, a folder with model.onnx (normalized padded pixels, the resized size and the "
        "rescale factor of one image in; final detections in original-image pixels out; standard ONNX operators, "
        "any height and width; with --format openvino the same graph as OpenVINO IR, model.xml and model.bin; "
        "with --format exported-program a torch.export program, model.pt2), "
        "config.json, preprocessor_config.json and export.json. Run it with `faster-rcnn-hub detect --backend "
        "onnxruntime|openvino --model OUTPUT`, Detector(OUTPUT, backend='onnxruntime'|'openvino'), "
        "or without PyTorch with `python -m faster_rcnn_hub.runtime OUTPUT IMAGE...`.",
    )
    export.add_argument("model", help="converted model folder, Hub id, or 'default' for the bundled model")
    export.add_argument("output", help="export folder to create (must not exist)")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="onnx", help="export format (default onnx)")
    export.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset, >= 16 (default {DEFAULT_OPSET})")
    export.add_argument(
        "--batch",
        type=batch_argument,
        default=1,
        help="images per run of the graph: 1 (default), a count N, or 'dynamic' (any count); batched graphs take "
        "images of one padded size and also output each detection's batch_index (the runtimes group images by "
        "padded size)",
    )
    export.add_argument(
        "--quantize",
        choices=QUANTIZE_CHOICES,
        help="int8: quantize the backbone, FPN and RPN convolutions (ONNX only; RoiAlign, the box head and the "
        "detection logic stay float32); needs --calibration-images",
    )
    export.add_argument(
        "--calibration-images",
        metavar="DIR",
        help="with --quantize: folder of images like the ones the model will see (its training images, never its "
        "evaluation set); the first 32 by name calibrate the activation ranges",
    )
    return {"export": run_export}


def batch_argument(text: str) -> int | str:
    """`--batch`: a positive count of images per run, or `"dynamic"`."""
    if text == "dynamic":
        return text
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'dynamic', got {text!r}")
    return count


def run_export(args: argparse.Namespace) -> int:
    from ..exporting import export

    model = None if args.model == "default" else args.model
    folder = export(
        model,
        args.output,
        format=args.format,
        opset=args.opset,
        batch=args.batch,
        quantize=args.quantize,
        calibration_images=args.calibration_images,
    )
    precision = ", int8" if args.quantize else ""
    print(f"exported {args.model} to {folder} ({args.format}, opset {args.opset}, batch {args.batch}{precision})")
    return 0


__all__ = ["add_commands", "batch_argument", "run_export"]
