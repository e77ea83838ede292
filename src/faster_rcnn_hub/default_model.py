"""The model the package ships, used by `detect` (and the demo) when no `--model` is given."""

from __future__ import annotations

from pathlib import Path

from .errors import FasterRCNNHubError

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "default_model"
# Image 0 of the default model's held-out set (`faster-rcnn-hub synth` drawing, seed 1000003): never trained on.
EXAMPLE_IMAGE = Path(__file__).resolve().parent / "assets" / "shapes_example.png"


def default_model_dir() -> Path:
    """Folder of the bundled default model, or a `FasterRCNNHubError` saying how to choose a model instead."""
    if not (DEFAULT_MODEL_DIR / "config.json").is_file() or not (DEFAULT_MODEL_DIR / "model.safetensors").is_file():
        raise FasterRCNNHubError(
            "This installation has no bundled default model; pass --model with a converted model folder "
            "(faster-rcnn-hub convert CHECKPOINT OUTPUT_DIR makes one)."
        )
    return DEFAULT_MODEL_DIR


def example_image_path() -> Path:
    """A synthetic image of the kind the default model knows (for the example script and the demo)."""
    return EXAMPLE_IMAGE
