"""The `faster-rcnn-hub` command line: convert mmdetection checkpoints, detect objects, train and evaluate."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import FasterRCNNHubError
from .training_cli import HANDLERS as TRAINING_HANDLERS
from .training_cli import add_commands as add_training_commands


def _add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="mmdetection checkpoint (.pth), 2.x or 3.x")
    parser.add_argument("output_dir", help="folder to write the Hugging Face model to (must not exist)")
    parser.add_argument(
        "--config", help="mmdetection config (.py or .json) to use instead of the one embedded in the checkpoint"
    )
    parser.add_argument(
        "--classes",
        help="class names: a file with one per line, a comma-separated list, or coco / voc / cityscapes "
        "(default: from the checkpoint, or the config's dataset)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT_DIR if it exists")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faster-rcnn-hub",
        description="Run mmdetection Faster R-CNN checkpoints with PyTorch and transformers alone.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser(
        "convert",
        help="convert an mmdetection checkpoint into a Hugging Face model folder",
        description="Convert an mmdetection Faster R-CNN checkpoint into config.json, model.safetensors, "
        "preprocessor_config.json and a README.md model card.",
    )
    _add_convert_arguments(convert)

    detect = commands.add_parser("detect", help="detect objects in images and draw them")
    detect.add_argument("images", nargs="+", help="image files")
    detect.add_argument("--model", help="converted model folder (default: the model bundled with the package)")
    detect.add_argument("--threshold", type=float, default=0.5, help="minimum score to report (default 0.5)")
    detect.add_argument(
        "--output-dir", default=".", help="where to write <image>_detections.png (default: current folder)"
    )
    detect.add_argument("--json", dest="json_path", help="also write all detections to this JSON file")
    detect.add_argument("--no-draw", action="store_true", help="do not write annotated images")
    detect.add_argument("--overwrite", action="store_true", help="replace annotated images that already exist")
    detect.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    add_training_commands(commands)
    return parser


def run_convert(args: argparse.Namespace) -> int:
    from .conversion import convert_checkpoint

    result = convert_checkpoint(
        args.checkpoint, args.output_dir, config_path=args.config, classes=args.classes, overwrite=args.overwrite
    )
    config = result.config
    print(
        f"Converted {args.checkpoint} -> {result.output_dir} "
        f"(ResNet-{config.backbone_depth}{' x' + str(config.backbone_groups) if config.backbone_groups > 1 else ''}"
        f" FPN, {config.num_classes} classes, test scale {result.processor.size['longest_edge']}x"
        f"{result.processor.size['shortest_edge']})"
    )
    for note in result.notes:
        print(f"note: {note}")
    return 0


def run_detect(args: argparse.Namespace) -> int:
    from .default_model import default_model_dir
    from .detection import Detector
    from .image_io import load_image
    from .visualization import draw_detections

    if not 0.0 <= args.threshold <= 1.0:
        raise FasterRCNNHubError(f"--threshold must lie in [0, 1], got {args.threshold}.")
    output_dir = Path(args.output_dir)
    targets = [output_dir / f"{Path(image).stem}_detections.png" for image in args.images]
    if not args.no_draw and not args.overwrite:
        existing = [str(target) for target in targets if target.exists()]
        if existing:
            raise FasterRCNNHubError(f"Not overwriting {', '.join(existing)}; pass --overwrite to replace.")
    # Read every image before any work so that a bad file stops the run before anything is written.
    images = [load_image(path) for path in args.images]
    detector = Detector(args.model if args.model else default_model_dir(), device=args.device)
    report = {}
    for path, image, target in zip(args.images, images, targets):
        detections = detector(image, threshold=args.threshold)
        print(f"{path}: {len(detections)} detections (score > {args.threshold})")
        for detection in detections:
            box = ", ".join(f"{value:.1f}" for value in detection.box)
            print(f"  {detection.label:<20} {detection.score:.3f}  [{box}]")
        report[str(path)] = {"width": image.width, "height": image.height, "detections": [d.to_dict() for d in detections]}
        if not args.no_draw:
            output_dir.mkdir(parents=True, exist_ok=True)
            draw_detections(image, [d.to_dict() for d in detections]).save(target)
            print(f"  annotated image: {target}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"detections written to {args.json_path}")
    return 0


COMMANDS = {"convert": run_convert, "detect": run_detect, **TRAINING_HANDLERS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except FasterRCNNHubError as error:
        print(f"faster-rcnn-hub {args.command}: error: {error}", file=sys.stderr)
        return 2


def convert_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `convert/convert_mmdet_checkpoint.py`: the `convert` command on its own."""
    parser = argparse.ArgumentParser(
        prog="convert_mmdet_checkpoint.py",
        description="Convert an mmdetection Faster R-CNN checkpoint into a Hugging Face model folder.",
    )
    _add_convert_arguments(parser)
    args = parser.parse_args(argv)
    args.command = "convert"
    try:
        return run_convert(args)
    except FasterRCNNHubError as error:
        print(f"convert_mmdet_checkpoint.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
