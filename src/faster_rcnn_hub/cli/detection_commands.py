"""The `detect` and `predict` commands: detections of a few images (printed, drawn, JSON), or of a folder (JSON lines,
resumable, on several processes under `accelerate launch`)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from ..errors import FasterRCNNHubError, ModelNotFoundError
from .arguments import add_dtype_argument


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add `detect` and `predict` to `commands` (argparse subparsers); returns their handlers by name."""
    detect = commands.add_parser("detect", help="detect objects in images and draw them")
    detect.add_argument("images", nargs="+", help="image files")
    detect.add_argument("--model", help="converted model folder (default: the model bundled with the package)")
    detect.add_argument("--threshold", type=float, default=0.5, help="minimum score to report (default 0.5)")
    detect.add_argument(
        "--output-dir", default=".", help="where to write <image>_detections.png (default: current folder); images "
        "with one file name get <image>-2_detections.png, -3, ... in the order given"
    )
    detect.add_argument(
        "--json", dest="json_path",
        help="also write all detections to this JSON file (a mask model's with their mask as COCO RLE)",
    )  # fmt: skip
    detect.add_argument("--no-draw", action="store_true", help="do not write annotated images")
    detect.add_argument(
        "--overwrite", action="store_true", help="replace existing annotated images, and a --json detect did not write"
    )
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
    predict.add_argument(
        "--backend", choices=("torch", "onnxruntime", "openvino"), default="torch",
        help="torch (default), or onnxruntime / openvino with --model an export folder (faster-rcnn-hub export)",
    )  # fmt: skip

    return {"detect": run_detect, "predict": run_predict}


# detect decodes this many batches of images at a time (the rest wait on disk), as `Detector.detect_batch` does.
_BATCHES_IN_MEMORY = 4


def run_detect(args: argparse.Namespace) -> int:
    from ..default_model import default_model_dir
    from ..detection import Detector, draw_detections
    from ..detection.image_files import check_image_file
    from ..models.faster_rcnn.image_io import load_image

    if not 0.0 <= args.threshold <= 1.0:
        raise FasterRCNNHubError(f"--threshold must lie in [0, 1], got {args.threshold}.")
    if args.batch_size < 1:
        raise FasterRCNNHubError(f"--batch-size must be at least 1, got {args.batch_size}.")
    output_dir = Path(args.output_dir)
    targets = [output_dir / f"{name}_detections.png" for name in annotated_image_names(args.images)]
    _check_outputs(args, output_dir, targets)
    # Every image's header before any work, so that a missing or foreign file stops the run before anything is
    # written; the pixels are decoded batch by batch below, so memory holds a few batches, not every image.
    for path in args.images:
        check_image_file(path)
    if args.backend != "torch" and not args.model:
        raise FasterRCNNHubError(
            f"--backend {args.backend} runs an export folder: pass --model OUTPUT of `faster-rcnn-hub export`."
        )
    model = args.model if args.model else default_model_dir()
    try:
        detector = Detector(model, device=args.device, dtype=args.dtype, backend=args.backend)
    except OSError as error:  # transformers' words for a Hub id it cannot find or download
        raise ModelNotFoundError(f"Cannot load the model {str(model)!r}: {' '.join(str(error).split())}") from error
    report = {}
    chunk = args.batch_size * _BATCHES_IN_MEMORY
    for start in range(0, len(args.images), chunk):
        paths = args.images[start : start + chunk]
        images = [load_image(path) for path in paths]
        found = detector.detect_batch(images, threshold=args.threshold, batch_size=args.batch_size, progress=False)
        for path, image, target, detections in zip(paths, images, targets[start : start + chunk], found):
            print(f"{path}: {len(detections)} detections (score > {args.threshold})")
            for detection in detections:
                box = ", ".join(f"{value:.1f}" for value in detection.box)
                area = f"  mask {detection.mask.area} px" if detection.mask is not None else ""
                print(f"  {detection.label:<20} {detection.score:.3f}  [{box}]{area}")
            records = [detection.to_dict() for detection in detections]
            report[str(path)] = {"width": image.width, "height": image.height, "detections": records}
            if not args.no_draw:
                output_dir.mkdir(parents=True, exist_ok=True)
                # The masks as their windows, not the records' RLE: drawing then touches only their pixels.
                drawn = [{**record, "mask": item.mask} for record, item in zip(records, detections)]
                draw_detections(image, drawn).save(target)
                print(f"  annotated image: {target}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"detections written to {args.json_path}")
    return 0


def annotated_image_names(images: list[str]) -> list[str]:
    """The name (without `_detections.png`) of each image's annotated copy: its file name's stem, with `-2`,
    `-3`, ... added to the second and later images of one stem (`a/x.png b/x.png`: `x`, `x-2`), never a name
    another image has, and compared case-insensitively (`X.png` and `x.png` would be one file on macOS/Windows).
    """
    stems = [Path(image).stem for image in images]
    own_names = {stem.casefold() for stem in stems}
    used: set[str] = set()
    names = []
    for stem in stems:
        name, number = stem, 2
        while name.casefold() in used or (name != stem and name.casefold() in own_names):
            name, number = f"{stem}-{number}", number + 1
        used.add(name.casefold())
        names.append(name)
    return names


def _check_outputs(args: argparse.Namespace, output_dir: Path, targets: list[Path]) -> None:
    """Refuse, before any work, outputs that exist (without --overwrite) or cannot be written."""
    from ..output_files import check_output_file, check_writable_folder

    if not args.no_draw:
        if not args.overwrite:
            existing = [str(target) for target in targets if target.exists()]
            if existing:
                raise FasterRCNNHubError(f"Not overwriting {', '.join(existing)}; pass --overwrite to replace.")
        inputs = {Path(image).resolve() for image in args.images}
        overwritten_inputs = [str(target) for target in targets if target.resolve() in inputs]
        if overwritten_inputs:
            raise FasterRCNNHubError(f"The annotated images would replace the input {', '.join(overwritten_inputs)}; "
                                     "choose another --output-dir.")  # fmt: skip
        check_writable_folder(output_dir, f"--output-dir {output_dir}")
    if args.json_path:
        check_output_file(args.json_path, "--json", args.overwrite, _is_detect_report, inputs=args.images)


def _is_detect_report(content: object) -> bool:
    """Whether parsed JSON is what `detect --json` writes: `{image: {"width", "height", "detections"}}`."""
    return isinstance(content, dict) and all(
        isinstance(entry, dict) and {"width", "height", "detections"} <= set(entry) for entry in content.values()
    )


def run_predict(args: argparse.Namespace) -> int:
    from ..prediction import predict_to_jsonl

    summary = predict_to_jsonl(
        args.model, args.images, args.output, threshold=args.threshold, batch_size=args.batch_size,
        num_workers=args.num_workers, device=args.device, dtype=args.dtype, retry_errors=args.retry_errors,
        progress=not args.no_progress, backend=args.backend,
    )  # fmt: skip
    if summary.is_main_process:
        print(
            f"{summary.images} images: {summary.already_done} already in {summary.output}, {summary.predicted} "
            f"predicted now ({summary.errors} unreadable, recorded with an error) on {summary.num_processes} "
            f"process(es); {summary.records} records in {summary.output}"
        )
    return 0


__all__ = ["add_commands", "run_detect", "run_predict"]
