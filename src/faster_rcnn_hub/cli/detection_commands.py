"""The `detect` and `predict` commands: detections of a few images (printed, drawn, JSON), or of a folder (JSON lines,
resumable, on several processes under `accelerate launch`)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from ..errors import FasterRCNNHubError
from .arguments import add_dtype_argument


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add `detect` and `predict` to `commands` (argparse subparsers); returns their handlers by name."""
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
    add_dtype_argument(detect)
    detect.add_argument(
        "--backend", choices=("torch", "onnxruntime", "openvino"), default="torch",
        help="torch (default), or onnxruntime / openvino with --model an export folder (faster-rcnn-hub export)",
    )  # fmt: skip

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
    add_dtype_argument(predict)

    return {"detect": run_detect, "predict": run_predict}


def run_detect(args: argparse.Namespace) -> int:
    from ..default_model import default_model_dir
    from ..detection import Detector, draw_detections
    from ..models.faster_rcnn.image_io import load_image

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
    if args.backend != "torch" and not args.model:
        raise FasterRCNNHubError(
            f"--backend {args.backend} runs an export folder: pass --model OUTPUT of `faster-rcnn-hub export`."
        )
    detector = Detector(
        args.model if args.model else default_model_dir(), device=args.device, dtype=args.dtype, backend=args.backend
    )
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
    from ..prediction import predict_to_jsonl

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


__all__ = ["add_commands", "run_detect", "run_predict"]
