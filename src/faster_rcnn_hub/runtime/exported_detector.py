"""What every runtime of an export shares: reading the folder, preparing images, turning outputs into detections."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import FasterRCNNHubError
from .export_folder import ExportedModelFolder
from .preprocessing import PreparedImage, Preprocessor

OUTPUT_NAMES = ("boxes", "scores", "labels")
# Exports of several images per run (`--batch N|dynamic`) also give the image of each detection.
BATCH_INDEX_OUTPUT = "batch_index"
DYNAMIC_BATCH = "dynamic"

Outputs = tuple[np.ndarray, np.ndarray, np.ndarray]


class ExportedDetector:
    """An export folder of one format, ready to run; subclasses load their runtime and implement `run_graph`.

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
        # 1, a fixed count of images per run, or "dynamic"
        self.batch: int | str = self.folder.metadata.get("batch", 1)
        self.output_names = list(OUTPUT_NAMES) if self.batch == 1 else [*OUTPUT_NAMES, BATCH_INDEX_OUTPUT]

    def inputs(self, prepared: PreparedImage) -> dict[str, np.ndarray]:
        return {
            "pixel_values": prepared.pixel_values,
            "image_size": prepared.image_size,
            "rescale_factor": prepared.rescale_factor,
        }

    def run_graph(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The graph's outputs (`self.output_names`, in order) for its inputs."""
        raise NotImplementedError(f"{type(self).__name__} must implement run_graph()")

    def run(self, prepared: PreparedImage) -> Outputs:
        """The graph's outputs for one prepared image: boxes `(N, 4)` in original-image pixels, scores `(N,)` by
        decreasing score and labels `(N,)`, every detection the model keeps."""
        return self.run_batch([prepared])[0]

    def run_batch(self, prepared: Sequence[PreparedImage]) -> list[Outputs]:
        """`run` of several prepared images of ONE padded size, in as few runs of the graph as its batch allows:
        a batch-1 export runs them one by one, a `--batch N` export N at a time (the last run filled up with
        copies of the last image, whose outputs are dropped), a `--batch dynamic` export all at once."""
        if not prepared:
            return []
        shapes = {image.pixel_values.shape for image in prepared}
        if len(shapes) > 1:
            raise FasterRCNNHubError(
                f"run_batch takes images of one padded size, got {sorted(shapes)}: group them by padded size "
                "(detect_batch does), so that each image sees only its own zero padding."
            )
        if self.batch == 1:
            return [tuple(self.run_graph(self.inputs(image))) for image in prepared]
        count = len(prepared) if self.batch == DYNAMIC_BATCH else int(self.batch)
        results: list[Outputs] = []
        for start in range(0, len(prepared), count):
            chunk = list(prepared[start : start + count])
            filled = chunk + [chunk[-1]] * (count - len(chunk))
            inputs = {
                "pixel_values": np.concatenate([image.pixel_values for image in filled]),
                "image_size": np.stack([image.image_size for image in filled]),
                "rescale_factor": np.stack([image.rescale_factor for image in filled]),
            }
            boxes, scores, labels, images = self.run_graph(inputs)
            for index in range(len(chunk)):
                own = images == index
                results.append((boxes[own], scores[own], labels[own]))
        return results

    def detect(self, image: Any, threshold: float = 0.5) -> list[dict[str, Any]]:
        """Detections with a score above `threshold` in one image (a path, bytes, PIL image or uint8 array), as
        `{"label", "label_id", "score", "box"}` dicts, `box` as x1, y1, x2, y2 in pixels of the image."""
        return self.detect_batch([image], threshold)[0]

    def detect_batch(self, images: Sequence[Any], threshold: float = 0.5) -> list[list[dict[str, Any]]]:
        """`detect` of several images: grouped by padded size (as the PyTorch model groups them, so each image
        gets exactly what it gets alone), each group through the graph in as few runs as its batch allows."""
        prepared = [self.preprocessor(image) for image in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(prepared):
            groups.setdefault(image.pixel_values.shape, []).append(index)
        results: list[list[dict[str, Any]]] = [[] for _ in prepared]
        for indices in groups.values():
            for index, outputs in zip(indices, self.run_batch([prepared[index] for index in indices])):
                results[index] = self._detections(prepared[index], *outputs, threshold)
        return results

    def _detections(
        self, prepared: PreparedImage, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, threshold: float
    ) -> list[dict[str, Any]]:
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


__all__ = ["BATCH_INDEX_OUTPUT", "DYNAMIC_BATCH", "OUTPUT_NAMES", "ExportedDetector"]
