"""The `convert` and `zoo` commands: mmdetection checkpoints (files or model-zoo names) into Hub model folders."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import FasterRCNNHubError

if TYPE_CHECKING:
    from ..zoo import ZooEntry


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add `convert` and `zoo` to `commands` (argparse subparsers); returns their handlers by name."""
    convert = commands.add_parser(
        "convert",
        help="convert an mmdetection checkpoint into a Hugging Face model folder",
        description="Convert an mmdetection Faster R-CNN checkpoint into config.json, model.safetensors, "
        "preprocessor_config.json and a README.md model card.",
    )
    add_convert_arguments(convert)

    zoo = commands.add_parser(
        "zoo",
        help="list mmdetection's Faster R-CNN, Cascade R-CNN and (Cascade) Mask R-CNN model zoo (names for convert)",
        description="mmdetection's Faster R-CNN, Cascade R-CNN, Mask R-CNN and Cascade Mask R-CNN checkpoints with "
        "ResNet/ResNeXt backbones: name, training data, box AP, and whether this version converts them.",
    )
    zoo.add_argument("--json", action="store_true", help="print the table as JSON (with URLs and SHA-256 prefixes)")

    return {"convert": run_convert, "zoo": run_zoo}


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
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


def run_convert(args: argparse.Namespace) -> int:
    from ..conversion import convert_checkpoint
    from ..conversion.from_zoo import convert_zoo_model
    from ..zoo import UnknownModelError, get_zoo_entry

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
    from ..hub import describe_plan, push_to_hub

    files = push_to_hub(folder, repo_id, private=private, dry_run=dry_run)
    if dry_run:
        print(f"Dry run, nothing uploaded. Would upload {describe_plan(files, repo_id, private)}")
    else:
        print(f"Uploaded {describe_plan(files, repo_id, private)}")


def run_zoo(args: argparse.Namespace) -> int:
    from ..conversion.config_mapping import zoo_support
    from ..zoo import zoo_entries

    entries = zoo_entries()
    statuses = [zoo_support(entry) for entry in entries]
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


__all__ = ["add_commands", "add_convert_arguments", "run_convert", "run_zoo"]
