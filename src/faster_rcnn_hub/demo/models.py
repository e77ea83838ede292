"""The models a demo offers: display name -> converted model folder or Hub id, each loaded once on first use."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import torch

from ..default_model import default_model_dir
from ..detection import Detector
from ..errors import FasterRCNNHubError

DEFAULT_MODEL_NAME = "default"


class ModelCatalogue:
    """Named models, loaded lazily and kept loaded (a demo serves a handful of models to many requests).

    Args:
        sources: Display name -> converted model folder or Hub id, in the order the picker lists them.
        device: Where the models run (`"cpu"`, `"cuda"`, ...); defaults to CUDA when available.
    """

    def __init__(self, sources: dict[str, str | os.PathLike], device: str | torch.device | None = None) -> None:
        if not sources:
            raise FasterRCNNHubError("A model catalogue needs at least one model.")
        self.sources = dict(sources)
        self.device = device
        self._detectors: dict[str, Detector] = {}
        # One lock per model so that two requests never load the same model twice, while a slow load of one
        # model does not hold up requests for another.
        self._locks = {name: threading.Lock() for name in self.sources}

    @classmethod
    def from_arguments(
        cls, models: Sequence[str] = (), device: str | torch.device | None = None
    ) -> ModelCatalogue:
        """The bundled default model (when the package has one) followed by `models` (folders or Hub ids).

        Raises:
            FasterRCNNHubError: When there is no model at all, or a path given is not a converted model folder.
        """
        sources: dict[str, str | os.PathLike] = {}
        try:
            sources[DEFAULT_MODEL_NAME] = default_model_dir()
        except FasterRCNNHubError:
            pass
        for model in models:
            sources[model] = _checked_source(model)
        if not sources:
            raise FasterRCNNHubError(
                "No model to serve: this installation has no bundled default model. Pass --model with a "
                "converted model folder or a Hugging Face Hub id (faster-rcnn-hub convert CHECKPOINT OUTPUT_DIR "
                "makes a folder from an mmdetection checkpoint)."
            )
        return cls(sources, device=device)

    @property
    def names(self) -> list[str]:
        return list(self.sources)

    def detector(self, name: str) -> Detector:
        """The loaded model called `name`, loading it on first use."""
        if name not in self.sources:
            raise FasterRCNNHubError(f"Unknown model {name!r}; this demo serves {', '.join(map(repr, self.names))}.")
        with self._locks[name]:
            if name not in self._detectors:
                self._detectors[name] = self._load(name)
            return self._detectors[name]

    def class_names(self, name: str) -> list[str]:
        """The classes model `name` detects, in label order."""
        id2label = self.detector(name).model.config.id2label
        return [id2label[index] for index in sorted(id2label)]

    def _load(self, name: str) -> Detector:
        source = self.sources[name]
        try:
            return Detector(source, device=self.device)
        except FasterRCNNHubError:
            raise
        except (OSError, ValueError) as error:
            # transformers reports a missing folder, an unknown Hub id or no network as OSError/ValueError with
            # long texts; say which model failed and what to check first.
            raise FasterRCNNHubError(
                f"Could not load model {name!r} ({source}): it is neither a converted model folder nor a Hub id "
                f"that can be downloaded or found in the local cache. Details: {error}"
            ) from error


def _checked_source(model: str) -> str | Path:
    """An existing path must be a converted model folder; anything else is taken as a Hub id."""
    path = Path(model).expanduser()
    if not path.exists():
        return model
    if not path.is_dir() or not (path / "config.json").is_file():
        raise FasterRCNNHubError(
            f"{model} is not a converted model folder (expected a folder with config.json and model.safetensors; "
            "faster-rcnn-hub convert CHECKPOINT OUTPUT_DIR makes one)."
        )
    return path.resolve()
