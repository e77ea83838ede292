"""Detections from an exported ONNX model with ONNX Runtime: the `Detector`'s results without PyTorch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import FasterRCNNHubError, MissingDependencyError
from .export_folder import ONNX_MODEL_FILE, ExportedModelFolder
from .preprocessing import PreparedImage, Preprocessor


def import_onnxruntime() -> Any:
    """The `onnxruntime` module, or a `MissingDependencyError` naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError as error:
        raise MissingDependencyError(
            "Running an exported model needs ONNX Runtime: pip install 'faster-rcnn-hub[export]' "
            "(or onnxruntime)."
        ) from error
    return onnxruntime


class OnnxDetector:
    """An export folder (`faster-rcnn-hub export ... --format onnx`) loaded into an ONNX Runtime session.

    Args:
        folder: The export folder.
        providers: ONNX Runtime execution providers (default: the CPU's).
        threads: Intra-op threads (default: ONNX Runtime's choice, one per core).

    Example:

    ```python
    >>> from faster_rcnn_hub.runtime import OnnxDetector
    >>> detector = OnnxDetector("exported/")
    >>> detector.detect("image.jpg", threshold=0.5)
    [{'label': 'person', 'label_id': 0, 'score': 0.98, 'box': [12.0, 30.5, 200.1, 388.0]}, ...]
    ```
    """

    def __init__(
        self, folder: str | os.PathLike, providers: Sequence[str] | None = None, threads: int | None = None
    ) -> None:
        self.folder = ExportedModelFolder.read(folder)
        if self.folder.metadata.get("format") != "onnx":
            raise FasterRCNNHubError(
                f"{self.folder.path} holds a {self.folder.metadata.get('format')!r} export; the onnxruntime backend "
                "runs ONNX exports (--format onnx)."
            )
        onnxruntime = import_onnxruntime()
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(self.folder.path / ONNX_MODEL_FILE), options, providers=list(providers or ["CPUExecutionProvider"])
        )
        self.preprocessor = Preprocessor(self.folder.preprocessor)
        self.id2label = self.folder.id2label

    def run(self, prepared: PreparedImage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The graph's raw outputs for one prepared image: boxes `(N, 4)` in original-image pixels, scores `(N,)`
        by decreasing score and labels `(N,)`, every detection the model keeps."""
        boxes, scores, labels = self.session.run(
            ["boxes", "scores", "labels"],
            {
                "pixel_values": prepared.pixel_values,
                "image_size": prepared.image_size,
                "rescale_factor": prepared.rescale_factor,
            },
        )
        return boxes, scores, labels

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


__all__ = ["OnnxDetector", "import_onnxruntime"]
