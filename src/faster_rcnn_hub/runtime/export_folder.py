"""What an export folder holds and how it is read back: the model file, its settings and the class names."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FasterRCNNHubError

ONNX_MODEL_FILE = "model.onnx"
# OpenVINO IR: the graph and its weights.
OPENVINO_MODEL_FILE = "model.xml"
OPENVINO_WEIGHTS_FILE = "model.bin"
# Written last by the exporter: a folder without it is not (or not yet) a complete export.
EXPORT_METADATA_FILE = "export.json"
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
SETTINGS_FILES = (CONFIG_FILE, PREPROCESSOR_FILE, EXPORT_METADATA_FILE)
# The model files of each export format.
MODEL_FILES = {"onnx": (ONNX_MODEL_FILE,), "openvino": (OPENVINO_MODEL_FILE, OPENVINO_WEIGHTS_FILE)}


@dataclass
class ExportedModelFolder:
    """An export folder read back: `faster-rcnn-hub export` writes the model (`model.onnx`, or OpenVINO's
    `model.xml` and `model.bin`), `config.json` (the model's configuration, with its class names),
    `preprocessor_config.json` (the image processor's settings) and `export.json` (format, opset, inputs and
    outputs)."""

    path: Path
    metadata: dict[str, Any]
    config: dict[str, Any]
    preprocessor: dict[str, Any]

    @classmethod
    def read(cls, path: str | os.PathLike) -> ExportedModelFolder:
        """Read an export folder, or raise `FasterRCNNHubError` saying what is missing and how to make one."""
        folder = Path(path)
        if not (folder / EXPORT_METADATA_FILE).is_file():
            hint = (
                " It looks like a converted PyTorch model folder: export it first with "
                f"`faster-rcnn-hub export {folder} OUTPUT_DIR --format onnx`, then use OUTPUT_DIR."
                if (folder / CONFIG_FILE).is_file()
                else " Make one with `faster-rcnn-hub export MODEL OUTPUT_DIR --format onnx`."
            )
            raise FasterRCNNHubError(
                f"{folder} is not an exported model folder (it has no {EXPORT_METADATA_FILE}).{hint}"
            )
        metadata = _read_json(folder / EXPORT_METADATA_FILE)
        export_format = metadata.get("format")
        if export_format not in MODEL_FILES:
            raise FasterRCNNHubError(
                f"{folder} holds an export of format {export_format!r}; the runtimes run {sorted(MODEL_FILES)} exports"
                + (
                    " (load an exported-program with torch.export.load(model.pt2).module())."
                    if export_format == "exported-program"
                    else "."
                )
            )
        missing = [name for name in (*MODEL_FILES[export_format], *SETTINGS_FILES) if not (folder / name).is_file()]
        if missing:
            raise FasterRCNNHubError(
                f"Export folder {folder} is incomplete: {', '.join(missing)} missing; export again."
            )
        return cls(
            path=folder,
            metadata=metadata,
            config=_read_json(folder / CONFIG_FILE),
            preprocessor=_read_json(folder / PREPROCESSOR_FILE),
        )

    @property
    def format(self) -> str:
        return str(self.metadata["format"])

    @property
    def id2label(self) -> dict[int, str]:
        return {int(index): str(name) for index, name in self.config.get("id2label", {}).items()}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise FasterRCNNHubError(f"Cannot read {path}: {error}. Export the model again.") from error


__all__ = [
    "CONFIG_FILE",
    "EXPORT_METADATA_FILE",
    "MODEL_FILES",
    "ONNX_MODEL_FILE",
    "OPENVINO_MODEL_FILE",
    "OPENVINO_WEIGHTS_FILE",
    "PREPROCESSOR_FILE",
    "SETTINGS_FILES",
    "ExportedModelFolder",
]
