"""A small high-level API: load a converted model once, detect objects in images."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from .image_io import load_image, to_rgb_array
from .image_processing_faster_rcnn import FasterRCNNImageProcessor
from .modeling_faster_rcnn import FasterRCNNForObjectDetection


@dataclass
class Detection:
    """One detected object; `box` is x1, y1, x2, y2 in pixels of the input image."""

    label: str
    label_id: int
    score: float
    box: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "label_id": self.label_id, "score": self.score, "box": self.box}


class Detector:
    """A converted Faster R-CNN and its processor, ready to run.

    Args:
        model: Path or Hub id of a converted model folder.
        device: Where to run (`"cpu"`, `"cuda"`, ...); defaults to CUDA when available.
    """

    def __init__(self, model: str | os.PathLike, device: str | torch.device | None = None) -> None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = FasterRCNNForObjectDetection.from_pretrained(str(model)).to(self.device).eval()
        self.processor = FasterRCNNImageProcessor.from_pretrained(str(model))

    def __call__(self, image: Any, threshold: float = 0.5) -> list[Detection]:
        """Detections with a score above `threshold` in one image (a path, PIL image, array or tensor)."""
        if isinstance(image, (str, os.PathLike, bytes)):
            image = load_image(image)
        array = to_rgb_array(image)
        inputs = self.processor(images=[array], device=self.device)
        with torch.no_grad():
            outputs = self.model(**inputs)
        result = self.processor.post_process_object_detection(outputs, threshold=threshold)[0]
        id2label = self.model.config.id2label
        return [
            Detection(label=id2label[int(label)], label_id=int(label), score=float(score), box=[float(v) for v in box])
            for score, label, box in zip(result["scores"].cpu(), result["labels"].cpu(), result["boxes"].cpu())
        ]
