"""Making a converted folder load with `trust_remote_code=True` where this package is not installed.

The package's own module files are copied into the folder (the configuration, model and image-processor modules
and every module they import relatively, found the way transformers' dynamic-module loader finds them), and
`auto_map` in `config.json` points the Auto classes at them. There is no second copy of the model code to
maintain: the files written are the installed package's.

All three `auto_map` entries go in `config.json`, and `preprocessor_config.json` names no processor class, so
that `AutoImageProcessor` finds the processor through the model config. An `auto_map` in
`preprocessor_config.json` would make `pipeline()` look for a remote *video* processor too, and ask "Do you wish
to run the custom code? [y/N]" even where this package is installed and no remote code is needed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from transformers.dynamic_module_utils import get_relative_import_files

from . import configuration_faster_rcnn, image_processing_faster_rcnn, modeling_faster_rcnn

# (Auto class, module, class name) of each `auto_map` entry of config.json
AUTO_MAP = (
    ("AutoConfig", configuration_faster_rcnn, "FasterRCNNConfig"),
    ("AutoModelForObjectDetection", modeling_faster_rcnn, "FasterRCNNForObjectDetection"),
    ("AutoImageProcessor", image_processing_faster_rcnn, "FasterRCNNImageProcessor"),
)


def remote_code_files() -> list[Path]:
    """The package's module files a converted folder needs, entry modules first, without duplicates."""
    files: list[Path] = []
    for _, module, _ in AUTO_MAP:
        entry_file = Path(module.__file__)
        for path in [entry_file, *map(Path, get_relative_import_files(entry_file))]:
            if path not in files:
                files.append(path)
    return files


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
        auto_map[auto_class] = f"{module.__name__.rsplit('.', 1)[-1]}.{class_name}"
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


__all__ = ["AUTO_MAP", "remote_code_files", "write_remote_code"]
