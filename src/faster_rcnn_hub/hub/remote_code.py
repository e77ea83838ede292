"""The model code a model folder carries, so that it loads with `trust_remote_code=True` where this package is not
installed, and the check that a folder about to be uploaded does.

The model folder `faster_rcnn_hub/models/faster_rcnn/` is exactly that code: its modules import only each other
(single-dot relative imports) and third-party packages. Its `saving.py` copies the three entry modules and every
module they import into each folder that `save_pretrained` writes (conversion, training, `Trainer.save_model`)
and points the Auto classes at them; see there why `preprocessor_config.json` names no processor class.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..models.faster_rcnn.saving import CODE_DIR, ENTRY_POINTS, code_files, relative_imports, write_model_code

MODEL_CODE_DIR = CODE_DIR
# (Auto class, module, class name) of each `auto_map` entry of config.json
AUTO_MAP = ENTRY_POINTS


def remote_code_files() -> list[Path]:
    """The model folder's module files that a saved folder carries, entry modules first, then by name."""
    return code_files()


def remote_loading_problems(folder: str | Path) -> list[str]:
    """What would keep `folder` from loading with `trust_remote_code=True` where this package is not installed, on
    any transformers release we support; empty when nothing would."""
    folder = Path(folder)
    problems = []
    auto_map = _read_json(folder / "config.json").get("auto_map") or {}
    entries = []
    for auto_class, module, class_name in AUTO_MAP:
        reference = auto_map.get(auto_class)
        if not reference:
            problems.append(f"config.json has no auto_map entry for {auto_class} (expected '{module}.{class_name}')")
        else:
            entries.append(reference.rsplit("--", 1)[-1].rsplit(".", 1)[0])
    for entry in entries:
        problems.extend(_code_problems(folder, entry))
    processor_path = folder / "preprocessor_config.json"
    if processor_path.is_file():
        settings = _read_json(processor_path)
        if "image_processor_type" in settings and "auto_map" not in settings:
            problems.append(
                "preprocessor_config.json names image_processor_type, which only this package resolves (elsewhere "
                "AutoImageProcessor fails with 'Unrecognized image processor')"
            )
    return list(dict.fromkeys(problems))


def _code_problems(folder: Path, entry: str) -> list[str]:
    """Missing module files below the entry module `entry`, and modules it reaches only through others (which
    transformers 4.57 and 5.0 do not copy into their module cache for a local folder)."""
    if not (folder / f"{entry}.py").is_file():
        return [f"{entry}.py is missing (config.json's auto_map points at it)"]
    problems = []
    direct = set(relative_imports(folder / f"{entry}.py"))
    seen, pending = {entry}, [(name, f"{entry}.py") for name in direct]
    while pending:
        module, importer = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = folder / f"{module}.py"
        if not path.is_file():
            problems.append(f"{module}.py is missing (imported by {importer})")
            continue
        if module not in direct:
            problems.append(
                f"{entry}.py imports {module}.py only through {importer}, so transformers 4.57 and 5.0 would not "
                "copy it"
            )
        pending.extend((name, path.name) for name in relative_imports(path))
    return problems


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


__all__ = ["AUTO_MAP", "MODEL_CODE_DIR", "remote_code_files", "remote_loading_problems", "write_model_code"]
