"""What every runtime of an export shares: reading the folder, preparing images, turning outputs into detections."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import FasterRCNNHubError
from .export_folder import ExportedModelFolder
from .preprocessing import PreparedImage, Preprocessor

OUTPUT_NAMES = ("boxes", "scores", "labels")


class ExportedDetector:
    """An export folder of one format, ready to run; subclasses load their runtime and implement `run`.

    Args:
        folder: The export folder (`faster-rcnn-hub export MODEL OUTPUT --format FORMAT`).
    """

    format = ""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = ExportedModelFolder.read(folder)
        if self.folder.format != self.format:
            raise FasterRCNNHubError(
                f"{self.folder.path} holds a {self.folder.format!r} export; this backend runs {self.format!r} exports "
                f"(faster-rcnn-hub export MODEL OUTPUT --format {self.format})."
            )
        self.preprocessor = Preprocessor(self.folder.preprocessor)
        self.id2label = self.folder.id2label

    def inputs(self, prepared: PreparedImage) -> dict[str, np.ndarray]:
        return {
            "pixel_values": prepared.pixel_values,
            "image_size": prepared.image_size,
            "rescale_factor": prepared.rescale_factor,
        }

    def run(self, prepared: PreparedImage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The graph's outputs for one prepared image: boxes `(N, 4)` in original-image pixels, scores `(N,)` by
        decreasing score and labels `(N,)`, every detection the model keeps."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")

    def detect(self, image: Any, threshold: float = 0.5) -> list[dict[str, Any]]:
        """Detections with a score above `threshold` in one image (a path, bytes, PIL image or uint8 array), as
        `{"label", "label_id", "score", "box"}` dicts, `box` as x1, y1, x2, y2 in pixels of the image."""
        prepared = self.preprocessor(image)
        boxes, scores, labels = self.run(prepared)
        # As the image processor's post-processing: boxes inside the original image, scores above the threshold.
        height, width = prepared.original_size
        boxes = np.stack(
            [
                np.clip(boxes[:, 0], 0, float(width)),
                np.clip(boxes[:, 1], 0, float(height)),
                np.clip(boxes[:, 2], 0, float(width)),
                np.clip(boxes[:, 3], 0, float(height)),
            ],
            axis=1,
        ).astype(np.float32)
        keep = scores > threshold
        return [
            {
                "label": self.id2label.get(int(label), str(int(label))),
                "label_id": int(label),
                "score": float(score),
                "box": [float(value) for value in box],
            }
            for box, score, label in zip(boxes[keep], scores[keep], labels[keep])
        ]


__all__ = ["OUTPUT_NAMES", "ExportedDetector"]
