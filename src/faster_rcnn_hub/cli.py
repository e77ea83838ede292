"""The `faster-rcnn-hub` command line: convert mmdetection checkpoints, detect objects, train and evaluate,
serve the demo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import FasterRCNNHubError
from .training_cli import HANDLERS as TRAINING_HANDLERS
from .training_cli import add_commands as add_training_commands

if TYPE_CHECKING:
    from .zoo import ZooEntry


def _add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        help="mmdetection checkpoint (.pth, 2.x or 3.x), or a model-zoo name (faster-rcnn-hub zoo lists them), "
        "downloaded into the cache and verified",
    )
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
    parser.add_argument(
        "--cache-dir",
        help="where model-zoo downloads are kept (default: $FASTER_RCNN_HUB_CACHE, else faster-rcnn-hub/ in the "
        "Hugging Face home: $HF_HOME, $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface)",
    )
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="upload OUTPUT_DIR to this Hub model repository")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create the repository private")
    parser.add_argument(
        "--dry-run", action="store_true", help="with --push-to-hub: list the files that would be uploaded, upload nothing"
    )


def _add_dtype_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
        help="network precision (default float32: mmdetection's detections; bfloat16/float16 are faster on GPUs "
        "and on CPUs with half-precision units, and find nearly the same boxes)",
    )  # fmt: skip


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

    zoo = commands.add_parser(
        "zoo",
        help="list mmdetection's Faster R-CNN model zoo (names for convert)",
        description="mmdetection's Faster R-CNN checkpoints with ResNet/ResNeXt backbones: name, training data, "
        "box AP, and whether this version converts them.",
    )
    zoo.add_argument("--json", action="store_true", help="print the table as JSON (with URLs and SHA-256 prefixes)")

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
    detect.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default 4)")
    _add_dtype_argument(detect)

    predict = commands.add_parser(
        "predict",
        help="detect objects in a folder of images, one JSON line per image (resumable; multi-process with "
        "accelerate launch)",
        description="Detect objects in every image of a folder or glob pattern and append one JSON line per image "
        "to OUTPUT ({path, width, height, detections}, or {path, error} for an unreadable image). Images already "
        "in OUTPUT are skipped, so an interrupted run continues where it stopped. Under accelerate launch "
        "--num_processes N the images are shared among the processes and merged into OUTPUT at the end.",
    )
    predict.add_argument("--images", required=True, help="folder (searched recursively) or glob pattern (quoted)")
    predict.add_argument("--output", required=True, help="JSON-lines file to append to (OUT.jsonl)")
    predict.add_argument("--model", help="converted model folder or Hub id (default: the bundled model)")
    predict.add_argument("--threshold", type=float, default=0.5, help="minimum score to report (default 0.5)")
    predict.add_argument("--batch-size", type=int, default=4, help="images per forward pass and process (default 4)")
    predict.add_argument("--num-workers", type=int, default=2,
                         help="data-loader processes decoding images, per process (default 2; 0: none)")  # fmt: skip
    predict.add_argument("--device", help="cpu, cuda, cuda:1, ... for one process (default: cuda when available); "
                         "under accelerate launch each process uses its own")  # fmt: skip
    predict.add_argument("--retry-errors", action="store_true",
                         help="try again the images OUTPUT records as unreadable")  # fmt: skip
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_dtype_argument(predict)

    demo = commands.add_parser(
        "demo",
        help="serve the web demo (needs the [demo] extra)",
        description="Serve the Gradio demo page and API: upload an image, see its detections. Needs gradio: "
        "pip install 'faster-rcnn-hub[demo]'.",
    )
    demo.add_argument(
        "--model",
        dest="models",
        action="append",
        default=[],
        metavar="MODEL",
        help="converted model folder or Hub id to offer besides the bundled default model; repeat for several "
        "(the first is selected)",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    demo.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    demo.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    demo.add_argument(
        "--concurrency", type=int, default=1, help="detection requests run at once; others queue (default 1)"
    )
    demo.add_argument(
        "--queue-size", type=int, default=64, help="requests that may wait; more are turned away (default 64)"
    )
    add_training_commands(commands)
    return parser


def run_convert(args: argparse.Namespace) -> int:
    from .conversion import convert_checkpoint
    from .conversion.from_zoo import convert_zoo_model
    from .zoo import UnknownModelError, get_zoo_entry

    if (args.private or args.dry_run) and not args.push_to_hub:
        raise FasterRCNNHubError("--private and --dry-run only apply to an upload: add --push-to-hub REPO_ID.")
    options = dict(
        config_path=args.config, classes=args.classes, overwrite=args.overwrite, model_id=args.push_to_hub
    )
    if _names_a_file(args.checkpoint):
        result = convert_checkpoint(args.checkpoint, args.output_dir, **options)
    else:
        try:
            get_zoo_entry(args.checkpoint)
        except UnknownModelError as error:
            raise UnknownModelError(f"There is no checkpoint file {args.checkpoint!r}, and {error}") from error
        result = convert_zoo_model(args.checkpoint, args.output_dir, cache_dir=args.cache_dir, **options)
    config = result.config
    print(
        f"Converted {args.checkpoint} -> {result.output_dir} "
        f"(ResNet-{config.backbone_depth}{' x' + str(config.backbone_groups) if config.backbone_groups > 1 else ''}"
        f" {config.layout_name}, {config.num_classes} classes, test scale {result.processor.size['longest_edge']}x"
        f"{result.processor.size['shortest_edge']})"
    )
    for note in result.notes:
        print(f"note: {note}")
    if args.push_to_hub:
        _push(result.output_dir, args.push_to_hub, args.private, args.dry_run)
    return 0


def _names_a_file(source: str) -> bool:
    """A checkpoint argument is a file when it exists or looks like a path; otherwise a model-zoo name."""
    path = Path(source)
    return path.exists() or path.suffix in (".pth", ".pt") or len(path.parts) > 1


def _push(folder: Path, repo_id: str, private: bool, dry_run: bool) -> None:
    from .hub import describe_plan, push_to_hub

    files = push_to_hub(folder, repo_id, private=private, dry_run=dry_run)
    if dry_run:
        print(f"Dry run, nothing uploaded. Would upload {describe_plan(files, repo_id, private)}")
    else:
        print(f"Uploaded {describe_plan(files, repo_id, private)}")


def run_zoo(args: argparse.Namespace) -> int:
    from .zoo import zoo_entries

    entries = zoo_entries()
    statuses = [entry.support() for entry in entries]
    if args.json:
        rows = [
            {**_entry_summary(entry), "supported": status.supported, "unsupported_reason": status.reason}
            for entry, status in zip(entries, statuses)
        ]
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(entry.name) for entry in entries)
    print(f"{'name':<{width}}  {'trained on':<26}  {'box AP':>6}  converts")
    for entry, status in zip(entries, statuses):
        box_ap = f"{entry.box_ap:.1f}" if entry.box_ap is not None else "-"
        support = "yes" if status.supported else f"not yet: {status.reason}"
        print(f"{entry.name:<{width}}  {entry.training_data:<26}  {box_ap:>6}  {support}")
    supported = sum(status.supported for status in statuses)
    print(
        f"\n{len(entries)} checkpoints, {supported} convert. "
        "faster-rcnn-hub convert NAME OUTPUT_DIR downloads and converts one."
    )
    return 0


def _entry_summary(entry: ZooEntry) -> dict:
    summary = entry.to_dict()
    summary.pop("mmdet_config")
    return summary


def run_detect(args: argparse.Namespace) -> int:
    from .default_model import default_model_dir
    from .detection import Detector
    from .image_io import load_image
    from .visualization import draw_detections

    if not 0.0 <= args.threshold <= 1.0:
        raise FasterRCNNHubError(f"--threshold must lie in [0, 1], got {args.threshold}.")
    if args.batch_size < 1:
        raise FasterRCNNHubError(f"--batch-size must be at least 1, got {args.batch_size}.")
    output_dir = Path(args.output_dir)
    targets = [output_dir / f"{Path(image).stem}_detections.png" for image in args.images]
    if not args.no_draw and not args.overwrite:
        existing = [str(target) for target in targets if target.exists()]
        if existing:
            raise FasterRCNNHubError(f"Not overwriting {', '.join(existing)}; pass --overwrite to replace.")
    # Read every image before any work so that a bad file stops the run before anything is written.
    images = [load_image(path) for path in args.images]
    detector = Detector(args.model if args.model else default_model_dir(), device=args.device, dtype=args.dtype)
    all_detections = detector.detect_batch(images, threshold=args.threshold, batch_size=args.batch_size)
    report = {}
    for path, image, target, detections in zip(args.images, images, targets, all_detections):
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


def run_predict(args: argparse.Namespace) -> int:
    from .prediction import predict_to_jsonl

    summary = predict_to_jsonl(
        args.model, args.images, args.output, threshold=args.threshold, batch_size=args.batch_size,
        num_workers=args.num_workers, device=args.device, dtype=args.dtype, retry_errors=args.retry_errors,
        progress=not args.no_progress,
    )  # fmt: skip
    if summary.is_main_process:
        print(
            f"{summary.images} images: {summary.already_done} already in {summary.output}, {summary.predicted} "
            f"predicted now ({summary.errors} unreadable, recorded with an error) on {summary.num_processes} "
            f"process(es); {summary.records} records in {summary.output}"
        )
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from .demo import create_demo, import_gradio, launch_demo

    import_gradio()  # before loading any model: say at once when the extra is missing
    demo = create_demo(
        args.models, device=args.device, concurrency_limit=args.concurrency, max_queue_size=args.queue_size
    )
    launch_demo(demo, host=args.host, port=args.port)
    return 0


COMMANDS = {"convert": run_convert, "zoo": run_zoo, "detect": run_detect, "predict": run_predict, "demo": run_demo, **TRAINING_HANDLERS}


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
