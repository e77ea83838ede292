"""Generate `src/faster_rcnn_hub/zoo/model_zoo.json`: mmdetection's Faster R-CNN, Cascade R-CNN, Mask R-CNN and
Cascade Mask R-CNN checkpoints with ResNet/ResNeXt backbones, from mmdetection 3.3.0's metafiles and configs (copies
in `tools/zoo/`, see its README.md).

    python tools/generate_zoo_table.py            # rewrite the table
    python tools/generate_zoo_table.py --check    # exit 1 if the table differs from what the sources give

Every Faster R-CNN and Cascade R-CNN entry of the metafiles is read; entries with a mask head (they report an
Instance Segmentation result: Mask R-CNN, and Cascade Mask R-CNN, which shares the Cascade R-CNN collection) only
from the two collections' own metafiles, `mask_rcnn` and `cascade_rcnn`. Each config is
resolved with the package's own safe config parser, and the entry is kept when the backbone is a ResNet or
ResNeXt. Support is not decided here: the package
evaluates it at run time with the converter's config mapping.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from faster_rcnn_hub.conversion import load_config_file
from faster_rcnn_hub.zoo import TABLE_FILE, ZooEntry, compact_mmdet_config

REPO = Path(__file__).resolve().parents[1]
ZOO_SOURCES = REPO / "tools" / "zoo"
TABLE_PATH = REPO / "src" / "faster_rcnn_hub" / "zoo" / TABLE_FILE
BACKBONES = ("ResNet", "ResNeXt")
COLLECTIONS = ("Faster R-CNN", "Cascade R-CNN", "Mask R-CNN")
# Mask R-CNN entries of other metafiles (other backbones, LVIS, the strong baselines, ResNet strikes back, albu) are
# not read: only these two collections' own checkpoints are in the table.
MASK_METAFILES = ("mask_rcnn.metafile.yml", "cascade_rcnn.metafile.yml")
# mmdetection names checkpoints `<name>_<date>-<first 8 hex digits of the SHA-256>.pth`.
_SHA256_PREFIX = re.compile(r"-([0-9a-f]{8})\.pth$")


def metafile_models(metafile_dir: Path) -> list[dict[str, Any]]:
    """Every Faster R-CNN and Cascade R-CNN model of the metafiles, and the Mask R-CNN and Cascade Mask R-CNN models
    of `MASK_METAFILES`, with its collection's training data filled in."""
    models = []
    # mmdetection's own faster_rcnn collection first, the README-only checkpoints (extra) last.
    order = {"faster_rcnn.metafile.yml": 0, "extra.metafile.yml": 2}
    for path in sorted(metafile_dir.glob("*.metafile.yml"), key=lambda path: (order.get(path.name, 1), path.name)):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        # Some metafiles are a bare list of models, others a dict with Collections and Models.
        entries = data["Models"] if isinstance(data, dict) else data
        collections = {item["Name"]: item for item in (data.get("Collections", []) if isinstance(data, dict) else [])}
        for model in entries:
            if model.get("In Collection") not in COLLECTIONS:
                continue
            if _is_mask_model(model) and path.name not in MASK_METAFILES:
                continue
            collection_metadata = collections.get(model["In Collection"], {}).get("Metadata", {})
            metadata = {**collection_metadata, **model.get("Metadata", {})}
            models.append({**model, "Metadata": metadata, "metafile": path.name})
    return models


def _is_mask_model(model: dict[str, Any]) -> bool:
    # A Mask R-CNN (one of its entries reports a box AP only), or a Cascade Mask R-CNN, which shares the Cascade
    # R-CNN collection and reports an Instance Segmentation result.
    return model.get("In Collection") == "Mask R-CNN" or any(
        result.get("Task") == "Instance Segmentation" for result in model.get("Results", [])
    )


def zoo_entry(model: dict[str, Any], configs_root: Path) -> ZooEntry | None:
    """The table entry of one metafile model, or `None` when its backbone is not a ResNet/ResNeXt."""
    config_file = model["Config"].removeprefix("configs/")
    config = load_config_file(configs_root / config_file)
    if config["model"]["backbone"]["type"] not in BACKBONES:
        return None
    if ("mask_head" in config["model"].get("roi_head", {})) != _is_mask_model(model):
        raise SystemExit(f"{model['Name']}: its config has a mask head if and only if the metafile says it has one")
    url = model["Weights"]
    match = _SHA256_PREFIX.search(url)
    if match is None:
        raise SystemExit(f"{model['Name']}: no SHA-256 prefix in the checkpoint URL {url}")
    results = [result for result in model.get("Results", []) if result.get("Task") == "Object Detection"]
    box_ap = results[0]["Metrics"].get("box AP") if results else None
    masks = [result for result in model.get("Results", []) if result.get("Task") == "Instance Segmentation"]
    mask_ap = masks[0]["Metrics"].get("mask AP") if masks else None
    stem = Path(config_file).stem
    return ZooEntry(
        name=model["Name"],
        config_file=config_file,
        url=url,
        sha256_prefix=match[1],
        box_ap=float(box_ap) if box_ap is not None else None,
        mask_ap=float(mask_ap) if mask_ap is not None else None,
        eval_dataset=results[0]["Dataset"] if results else model["Metadata"]["Training Data"],
        training_data=model["Metadata"]["Training Data"],
        mmdet_config=compact_mmdet_config(config),
        aliases=(stem,) if stem != model["Name"] else (),
    )


def build_table(metafile_dir: Path, configs_root: Path) -> dict[str, Any]:
    entries = [entry for model in metafile_models(metafile_dir) if (entry := zoo_entry(model, configs_root))]
    names = [name for entry in entries for name in (entry.name, *entry.aliases)]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SystemExit(f"Names or aliases used by more than one entry: {duplicates}")
    return {
        "source": "mmdetection 3.3.0 metafiles and configs (tools/zoo/); generated by tools/generate_zoo_table.py",
        "entries": [entry.to_dict() for entry in entries],
    }


def render(table: dict[str, Any]) -> str:
    return json.dumps(table, indent=1, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metafiles", type=Path, default=ZOO_SOURCES / "metafiles", help="folder of *.metafile.yml")
    parser.add_argument(
        "--mmdet-root",
        type=Path,
        default=ZOO_SOURCES / "mmdet_configs",
        help="folder holding mmdetection's configs/ (default: the copies in tools/zoo/mmdet_configs)",
    )
    parser.add_argument("--check", action="store_true", help="compare with the table instead of writing it")
    args = parser.parse_args(argv)
    text = render(build_table(args.metafiles, args.mmdet_root / "configs"))
    if args.check:
        if TABLE_PATH.read_text(encoding="utf-8") != text:
            print(f"{TABLE_PATH} is out of date; run python tools/generate_zoo_table.py", file=sys.stderr)
            return 1
        print(f"{TABLE_PATH} is up to date")
        return 0
    TABLE_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {len(json.loads(text)['entries'])} entries to {TABLE_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
