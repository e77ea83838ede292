"""Checking a model folder before loading it, so that a broken one is one error naming the file (or field) and
what to do, instead of a traceback from deep inside transformers or safetensors."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import FasterRCNNHubError, ModelNotFoundError

CONFIG_FILE = "config.json"
PROCESSOR_FILE = "preprocessor_config.json"
WEIGHTS_FILE = "model.safetensors"
# Most mismatched tensors named in one error; the rest are counted.
_MAX_NAMED = 5


def check_model_source(model: str | os.PathLike) -> None:
    """Raise a `FasterRCNNHubError` naming the problem when `model` is neither a sound model folder nor a Hub id.

    A folder must hold `config.json` and `preprocessor_config.json` (valid JSON and valid settings) and
    `model.safetensors` (complete, every tensor the shape the config needs; sharded or `.bin` weights are left
    to `from_pretrained`). Something that looks like a path
    (it starts with `.`, `/` or `~`, or has other than one `/`) and does not exist is a missing folder, not a Hub id.

    Args:
        model: A model folder, or a Hub id (`owner/name`), which is left to `from_pretrained`.
    """
    path = Path(model)
    if not path.exists():
        text = str(model)
        if text.startswith((".", "/", "~")) or text.count("/") != 1:
            raise ModelNotFoundError(f"Model folder not found: {model}; give a folder written by convert or train.")
        return  # a Hub id
    if not path.is_dir():
        raise ModelNotFoundError(f"{model} is a file, not a model folder; give the folder that holds {CONFIG_FILE}.")
    for name in (CONFIG_FILE, PROCESSOR_FILE):
        if not (path / name).is_file():
            raise ModelNotFoundError(
                f"{model} is not a complete model folder: it has no {name}; convert or train the model again, or copy "
                "the file from the folder it was written to."
            )
        _check_json(path / name)
    config = _load_config(path)
    _load_processor(path)
    if (path / WEIGHTS_FILE).is_file():
        _check_weights(path / WEIGHTS_FILE, config)
    elif not any(path.glob("*.safetensors")) and not any(path.glob("pytorch_model*.bin")):
        raise ModelNotFoundError(
            f"{model} holds no weights (no {WEIGHTS_FILE}); convert or train the model again, or copy the file from "
            "the folder it was written to."
        )


def _check_json(file: Path) -> None:
    try:
        json.loads(file.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FasterRCNNHubError(f"{file} is not valid JSON ({error}); fix it, or convert the model again.") from error


def _load_config(path: Path):
    from ..models.faster_rcnn.configuration_faster_rcnn import FasterRCNNConfig

    try:
        return FasterRCNNConfig.from_pretrained(str(path))
    except (FasterRCNNHubError, TypeError) as error:
        raise FasterRCNNHubError(f"{path / CONFIG_FILE}: {error}") from error


def _load_processor(path: Path) -> None:
    from ..models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor

    try:
        FasterRCNNImageProcessor.from_pretrained(str(path))
    except (FasterRCNNHubError, TypeError) as error:
        raise FasterRCNNHubError(f"{path / PROCESSOR_FILE}: {error}") from error


def _check_weights(file: Path, config) -> None:
    """The file's header must read (a truncated file's does not), and each tensor the model has must have its
    shape (a file made for another number of classes or another architecture does not)."""
    import torch
    from safetensors import SafetensorError, safe_open

    from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection

    try:
        with safe_open(str(file), framework="pt") as weights:
            shapes = {name: list(weights.get_slice(name).get_shape()) for name in weights.keys()}
    except (SafetensorError, OSError) as error:
        raise FasterRCNNHubError(
            f"{file} is truncated or not a safetensors file ({error}); convert the model again, or download it again."
        ) from error
    with torch.device("meta"):  # the model's shapes without allocating or initialising its weights
        model = FasterRCNNForObjectDetection(config)
    expected = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
    mismatched = [
        f"{name}: the file has {shapes[name]}, the config needs {shape}"
        for name, shape in expected.items()
        if name in shapes and shapes[name] != shape
    ]
    if mismatched:
        more = f"; and {len(mismatched) - _MAX_NAMED} more" if len(mismatched) > _MAX_NAMED else ""
        raise FasterRCNNHubError(
            f"{file} does not fit {file.parent / CONFIG_FILE}: {'; '.join(mismatched[:_MAX_NAMED])}{more}. Were they "
            "written for different models? Convert or train the model again."
        )
