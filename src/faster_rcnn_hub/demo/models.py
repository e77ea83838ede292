"""The models a demo offers: display name -> converted model folder or Hub id, each loaded once on first use,
with what a visitor needs to know about it (real photos or synthetic shapes, one line, the model card)."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.synthetic import SHAPE_CLASSES
from ..default_model import default_model_dir
from ..detection import Detector
from ..errors import FasterRCNNHubError
from .last_stage import LastStageSettings

DEFAULT_MODEL_NAME = "Synthetic shapes (demo model)"
# What a model is for: its examples and the page's wording follow from it.
PHOTO_KIND = "photo"
SHAPES_KIND = "shapes"
HUB_URL = "https://huggingface.co"


@dataclass(frozen=True)
class ModelInfo:
    """What the page says about one model.

    Args:
        kind: `PHOTO_KIND` (a detector of real photographs) or `SHAPES_KIND` (the synthetic-shapes demo model).
        description: One line for the page.
        card: The model card as Markdown (its text for a folder that has one, a link for a Hub id), or `""`.
    """

    kind: str
    description: str
    card: str


def describe_model(source: str | os.PathLike, is_default: bool = False) -> ModelInfo:
    """What kind of model `source` (a converted folder or a Hub id) is, read from its config without loading
    its weights; a Hub id whose config cannot be fetched is taken for a photo model."""
    folder = Path(source)
    config_path = folder / "config.json"
    hub_id = None if config_path.is_file() else str(source)
    labels: list[str] = []
    try:
        if hub_id is not None:
            from huggingface_hub import hf_hub_download

            config_path = Path(hf_hub_download(hub_id, "config.json"))
        id2label = json.loads(config_path.read_text(encoding="utf-8")).get("id2label", {})
        labels = [id2label[key] for key in sorted(id2label, key=int)]
    except Exception:  # noqa: BLE001 - offline, unknown id, odd config: the description only gets vaguer
        labels = []
    card = f"[Model card on the Hugging Face Hub]({HUB_URL}/{hub_id})" if hub_id else _card_text(folder)
    if labels and set(labels) == set(SHAPE_CLASSES):
        description = (
            "Synthetic-shapes demo model: trained only on generated pictures of circles, squares, triangles, stars "
            "and crosses. It does not know real objects; pick a photo model for photographs."
        )
        if not is_default:
            description = description.replace("demo model", "model")
        return ModelInfo(kind=SHAPES_KIND, description=description, card=card)
    if len(labels) == 80 and "person" in labels:
        description = "Real-photo model: detects the 80 COCO classes (person, car, dog, cup, ...) in photographs."
    elif labels:
        description = f"Real-photo model: detects {len(labels)} classes ({', '.join(labels[:4])}, ...)."
    else:
        description = "Real-photo model from the Hugging Face Hub (its classes are listed once it is loaded)."
    return ModelInfo(kind=PHOTO_KIND, description=description, card=card)


def _card_text(folder: Path) -> str:
    """The folder's README.md without its front matter, or `""`."""
    readme = folder / "README.md"
    if not readme.is_file():
        return ""
    text = readme.read_text(encoding="utf-8")
    return re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.DOTALL).strip()


class ModelCatalogue:
    """Named models, loaded lazily and kept loaded (a demo serves a handful of models to many requests).

    Args:
        sources: Display name -> converted model folder or Hub id, in the order the picker lists them.
        device: Where the models run (`"cpu"`, `"cuda"`, ...); defaults to CUDA when available.
        infos: Display name -> what the page says about the model; described from its config when missing.
    """

    def __init__(
        self,
        sources: dict[str, str | os.PathLike],
        device: str | torch.device | None = None,
        infos: dict[str, ModelInfo] | None = None,
    ) -> None:
        if not sources:
            raise FasterRCNNHubError("A model catalogue needs at least one model.")
        self.sources = dict(sources)
        self.device = device
        infos = infos or {}
        self.infos = {name: infos.get(name) or describe_model(source) for name, source in self.sources.items()}
        self._detectors: dict[str, Detector] = {}
        # One lock per model so that two requests never load the same model twice, while a slow load of one
        # model does not hold up requests for another.
        self._locks = {name: threading.Lock() for name in self.sources}

    @classmethod
    def from_arguments(
        cls, models: Sequence[str] = (), device: str | torch.device | None = None
    ) -> ModelCatalogue:
        """`models` (folders or Hub ids) followed by the bundled default model (when the package has one).

        A folder is named after its last part and a Hub id is its own name (the page never shows a server
        path); a repeated name gets a number.

        Raises:
            FasterRCNNHubError: When there is no model at all, or a path given is not a converted model folder.
        """
        sources: dict[str, str | os.PathLike] = {}
        infos: dict[str, ModelInfo] = {}
        for model in models:
            source = _checked_source(model)
            name = source.name if isinstance(source, Path) else source
            number = 2
            while name in sources or name == DEFAULT_MODEL_NAME:
                name = f"{source.name if isinstance(source, Path) else source} ({number})"
                number += 1
            sources[name] = source
        try:
            sources[DEFAULT_MODEL_NAME] = default_model_dir()
            infos[DEFAULT_MODEL_NAME] = describe_model(sources[DEFAULT_MODEL_NAME], is_default=True)
        except FasterRCNNHubError:
            pass
        if not sources:
            raise FasterRCNNHubError(
                "No model to serve: this installation has no bundled default model. Pass --model with a "
                "converted model folder or a Hugging Face Hub id (faster-rcnn-hub convert CHECKPOINT OUTPUT_DIR "
                "makes a folder from an mmdetection checkpoint)."
            )
        return cls(sources, device=device, infos=infos)

    @property
    def names(self) -> list[str]:
        return list(self.sources)

    def names_of_kind(self, kind: str) -> list[str]:
        """The models of one kind (`PHOTO_KIND` or `SHAPES_KIND`), in picker order."""
        return [name for name in self.names if self.infos[name].kind == kind]

    def detector(self, name: str) -> Detector:
        """The loaded model called `name`, loading it on first use."""
        if name not in self.sources:
            raise FasterRCNNHubError(f"Unknown model {name!r}; this demo serves {', '.join(map(repr, self.names))}.")
        with self._locks[name]:
            if name not in self._detectors:
                self._detectors[name] = self._load(name)
            return self._detectors[name]

    def last_stage_settings(self, name: str) -> LastStageSettings:
        """Model `name`'s own NMS type, IoU threshold and cap on detections per image."""
        return LastStageSettings.of(self.detector(name).model)

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
                f"Could not load model {name!r}: it is neither a converted model folder nor a Hub id "
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
