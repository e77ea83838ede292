"""Every saved folder carries the model code, so that it loads with `trust_remote_code=True` where this package is
not installed: after a conversion, and after `save_pretrained` of the config, the model (which saves its config)
or the image processor, `Trainer.save_model` and `faster-rcnn-hub train` alike.

`write_model_code(folder)` copies the code files and points `config.json`'s `auto_map` at the three entry
modules. The code files are the entry modules and every module they import, found by reading their relative
imports; it works the same from the package's model folder and from the copy transformers keeps in its module
cache when this code itself was loaded as remote code, so a folder re-saved there carries the code too (see
`code_files`).

`preprocessor_config.json` names no processor class and has no `auto_map` when `config.json` sits beside it:
`AutoImageProcessor` then finds the processor through `config.json`. An `image_processor_type` there would make
transformers look the class name up in its own table, which fails where the package is not installed
("Unrecognized image processor"); an `auto_map` there would make `pipeline()` look for a remote *video* processor
too and ask "Do you wish to run the custom code? [y/N]" even where the package is installed.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

CODE_DIR = Path(__file__).resolve().parent

# (Auto class, entry module, class name): the `auto_map` entries of config.json.
ENTRY_POINTS = (
    ("AutoConfig", "configuration_faster_rcnn", "FasterRCNNConfig"),
    ("AutoModelForObjectDetection", "modeling_faster_rcnn", "FasterRCNNForObjectDetection"),
    ("AutoImageProcessor", "image_processing_faster_rcnn", "FasterRCNNImageProcessor"),
)
# A Mask R-CNN (`mask_head` in config.json) is also an instance segmentation model: `pipeline("image-segmentation")`
# loads it as remote code through these `auto_map` entries, which point at the object detection class.
SEGMENTATION_AUTO_CLASSES = ("AutoModelForImageSegmentation", "AutoModelForInstanceSegmentation")
CONFIG_NAME = "config.json"
PROCESSOR_CONFIG_NAME = "preprocessor_config.json"


def relative_imports(path: Path) -> list[str]:
    """Modules of its own folder that the module file `path` imports (`from .name import ...`), at any depth."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module and node.module not in names:
            names.append(node.module)
    return names


def needed_modules(code_dir: Path, entry_modules: list[str]) -> list[str]:
    """The entry modules, then every module they import directly or through others, by name."""
    found: set[str] = set()
    pending = list(entry_modules)
    while pending:
        module = pending.pop()
        if module in found:
            continue
        found.add(module)
        path = code_dir / f"{module}.py"
        if path.is_file():
            pending.extend(relative_imports(path))
    return list(entry_modules) + sorted(found - set(entry_modules))


def code_files(code_dir: Path = CODE_DIR) -> list[Path]:
    """The module files a saved folder carries: the three entry modules first, then the others by name.

    A copy that transformers loaded as remote code may hold the modules of one entry only (releases from 5.x on
    keep each entry module's files in a folder of their own): a save from there writes what that copy holds, and
    transformers itself copies the model's modules when it saves a model loaded as remote code.
    """
    entries = [entry for _, entry, _ in ENTRY_POINTS if (code_dir / f"{entry}.py").is_file()]
    return [code_dir / f"{module}.py" for module in needed_modules(code_dir, entries)]


def write_model_code(folder: str | os.PathLike) -> list[str]:
    """Make the saved `folder` loadable without this package: copy the model code into it, set `auto_map` in its
    `config.json` and drop the processor class name from its `preprocessor_config.json` (see the module
    docstring). Either JSON file may be missing (a config or a processor saved alone).

    Returns:
        The names of the code files written.
    """
    folder = Path(folder)
    names = []
    for source in code_files():
        target = folder / source.name
        if not (target.exists() and os.path.samefile(source, target)):
            shutil.copyfile(source, target)
        names.append(source.name)
    config_path, processor_path = folder / CONFIG_NAME, folder / PROCESSOR_CONFIG_NAME
    if config_path.is_file():
        config = _read_json(config_path)
        auto_map = {**config.get("auto_map", {}), **_auto_map()}
        for auto_class in SEGMENTATION_AUTO_CLASSES:
            if config.get("mask_head") is not None:
                auto_map[auto_class] = auto_map["AutoModelForObjectDetection"]
            else:
                auto_map.pop(auto_class, None)
        config["auto_map"] = auto_map
        _write_json(config_path, config)
    if processor_path.is_file():
        settings = _read_json(processor_path)
        if config_path.is_file():
            settings.pop("auto_map", None)
            settings.pop("image_processor_type", None)
        else:
            # A processor saved alone has no config.json to be found through: it names its own remote class.
            settings["auto_map"] = {"AutoImageProcessor": _auto_map()["AutoImageProcessor"]}
        _write_json(processor_path, settings)
    return names


def save_with_model_code(
    obj: Any, save_pretrained: Callable[..., Any], save_directory: str | os.PathLike, push_to_hub: bool, **kwargs: Any
) -> Any:
    """Run transformers' `save_pretrained` of `obj` (its config or image processor) into `save_directory`, write
    the model code beside it, then, with `push_to_hub`, upload through `obj.push_to_hub`, which saves again into
    a folder of its own (and so writes the code there too) before uploading it."""
    result = save_pretrained(save_directory, **kwargs)
    write_model_code(save_directory)
    if push_to_hub:
        repo_id = kwargs.pop("repo_id", Path(save_directory).resolve().name)
        obj.push_to_hub(repo_id, **kwargs)
    return result


def _auto_map() -> dict[str, str]:
    return {auto_class: f"{module}.{class_name}" for auto_class, module, class_name in ENTRY_POINTS}


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, data: dict) -> None:
    # transformers' own layout (indent 2, sorted keys), so a re-save changes only what it must
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


__all__ = ["CODE_DIR", "ENTRY_POINTS", "code_files", "needed_modules", "relative_imports", "save_with_model_code", "write_model_code"]
