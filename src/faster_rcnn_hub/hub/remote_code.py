"""Making a converted folder load with `trust_remote_code=True` where this package is not installed.

The model folder `faster_rcnn_hub/models/faster_rcnn/` is exactly the model code a converted folder carries: its
modules import only each other (single-dot relative imports) and third-party packages. Every module of it is
copied into the converted folder (all but its `__init__.py`, which only marks the package), and `auto_map` in
`config.json` points the Auto classes at the three entry modules. There is no list of files to keep in sync: a
module added to the model folder is carried from then on.

All three `auto_map` entries go in `config.json`, and `preprocessor_config.json` names no processor class, so
that `AutoImageProcessor` finds the processor through the model config. An `auto_map` in
`preprocessor_config.json` would make `pipeline()` look for a remote *video* processor too, and ask "Do you wish
to run the custom code? [y/N]" even where this package is installed and no remote code is needed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

MODEL_CODE_DIR = Path(__file__).resolve().parent.parent / "models" / "faster_rcnn"

# (Auto class, module, class name) of each `auto_map` entry of config.json
AUTO_MAP = (
    ("AutoConfig", "configuration_faster_rcnn", "FasterRCNNConfig"),
    ("AutoModelForObjectDetection", "modeling_faster_rcnn", "FasterRCNNForObjectDetection"),
    ("AutoImageProcessor", "image_processing_faster_rcnn", "FasterRCNNImageProcessor"),
)


def remote_code_files() -> list[Path]:
    """The model folder's module files that a converted folder carries, entry modules first, then by name."""
    entries = [MODEL_CODE_DIR / f"{module}.py" for _, module, _ in AUTO_MAP]
    others = sorted(path for path in MODEL_CODE_DIR.glob("*.py") if path.name != "__init__.py" and path not in entries)
    return entries + others


def write_remote_code(folder: str | Path) -> list[str]:
    """Copy the model code into `folder` and register it in the folder's `config.json` `auto_map`.

    `folder` must already hold `config.json` and `preprocessor_config.json` (as `save_pretrained` writes them).

    Returns:
        The names of the code files written.
    """
    folder = Path(folder)
    names = []
    for source in remote_code_files():
        shutil.copyfile(source, folder / source.name)
        names.append(source.name)
    config = _read_json(folder / "config.json")
    auto_map = config.setdefault("auto_map", {})
    for auto_class, module, class_name in AUTO_MAP:
        auto_map[auto_class] = f"{module}.{class_name}"
    _write_json(folder / "config.json", config)
    processor_config = _read_json(folder / "preprocessor_config.json")
    # Without a class name here, AutoImageProcessor resolves the processor from config.json (see above).
    processor_config.pop("image_processor_type", None)
    _write_json(folder / "preprocessor_config.json", processor_config)
    return names


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


__all__ = ["AUTO_MAP", "MODEL_CODE_DIR", "remote_code_files", "write_remote_code"]
