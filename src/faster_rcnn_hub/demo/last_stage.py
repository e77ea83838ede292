"""Re-running only the detector's last stage, per-class NMS and the cap on detections per image, with other
settings than the model's, without running the backbone, the RPN or the box head again.

The model's RoI head hands the per-class candidates (boxes in original-image pixels whose class score passed the
model's own score threshold) to its `class_nms`; a `CandidateRecorder` installed there keeps a copy of them, from
which `rerun_last_stage` computes what the model would give with another NMS IoU threshold or cap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch

from ..detection import Detection
from ..errors import FasterRCNNHubError
from ..models.faster_rcnn.nms import batched_nms


@dataclass
class Candidates:
    """What enters the model's last stage for one image: `(N, 4)` boxes, `(N,)` scores and class indices."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    image_size: tuple[int, int]

    @classmethod
    def empty(cls, image_size: tuple[int, int]) -> Candidates:
        return cls(torch.zeros((0, 4)), torch.zeros((0,)), torch.zeros((0,), dtype=torch.long), image_size)


@dataclass(frozen=True)
class LastStageSettings:
    """The model's own last-stage settings, the defaults of the demo's controls."""

    nms_type: str
    iou_threshold: float
    max_detections: int
    # A Mask R-CNN's masks come from its mask head on the detections its own NMS kept: other settings would keep
    # detections without a mask, so its last stage does not re-run.
    has_masks: bool = False

    @classmethod
    def of(cls, model: Any) -> LastStageSettings:
        config = model.config
        return cls(
            config.rcnn_nms_type, float(config.rcnn_nms_iou_threshold), int(config.rcnn_max_per_img),
            has_masks=getattr(config, "mask_head", None) is not None,
        )  # fmt: skip

    @property
    def rerunnable(self) -> bool:
        """Whether `rerun_last_stage` can give this model's detections with other settings."""
        return self.nms_type == "nms" and not self.has_masks


class CandidateRecorder:
    """Stands in for a RoI head's `class_nms`: passes every call on, and keeps the candidates of the last call
    made by the current thread (each model run happens on one thread, several may run at once).

    Args:
        roi_heads: The model's `RoIHeads`; the recorder installs itself as its `class_nms`.
    """

    def __init__(self, roi_heads: Any) -> None:
        self._original = roi_heads.class_nms
        self._local = threading.local()
        roi_heads.class_nms = self

    def __call__(self, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor):
        self._local.last = (boxes.detach().cpu().clone(), scores.detach().cpu().clone(), labels.detach().cpu())
        return self._original(boxes, scores, labels)

    def start(self) -> None:
        """Forget what this thread recorded (a model run with no candidate never calls `class_nms`)."""
        self._local.last = None

    def take(self, image_size: tuple[int, int]) -> Candidates:
        """The candidates of this thread's last model run on one image of `(width, height)` `image_size`."""
        last = getattr(self._local, "last", None)
        self._local.last = None
        if last is None:
            return Candidates.empty(image_size)
        return Candidates(*last, image_size=image_size)


_INSTALL_LOCK = threading.Lock()


def recorder_for(detector: Any) -> CandidateRecorder:
    """The detector's recorder, installed on first use (once, even when two model threads start together)."""
    roi_heads = detector.model.roi_heads
    with _INSTALL_LOCK:
        if not isinstance(roi_heads.class_nms, CandidateRecorder):
            CandidateRecorder(roi_heads)
    return roi_heads.class_nms


def rerun_last_stage(
    candidates: Candidates,
    settings: LastStageSettings,
    iou_threshold: float,
    max_detections: int,
    id2label: dict[int, str],
) -> list[Detection]:
    """The detections the model gives with NMS at `iou_threshold` and at most `max_detections` per image
    (by decreasing score, as the model's own output; the score threshold is applied after).

    Raises:
        FasterRCNNHubError: The settings are out of range, or the model uses soft-NMS (whose scores depend on
            its settings in ways this does not reproduce).
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise FasterRCNNHubError(f"The NMS IoU threshold must lie in (0, 1], got {iou_threshold}.")
    if not 1 <= max_detections <= settings.max_detections:
        raise FasterRCNNHubError(
            f"Max detections must lie between 1 and the model's own {settings.max_detections}, got {max_detections}."
        )
    if settings.has_masks:
        raise FasterRCNNHubError(
            "This model has a mask head: its masks belong to the detections of its own NMS settings "
            f"(IoU {settings.iou_threshold}, up to {settings.max_detections} detections), the only ones available."
        )
    if settings.nms_type != "nms":
        raise FasterRCNNHubError(
            f"This model uses {settings.nms_type}; only its own NMS settings are available here "
            f"(IoU {settings.iou_threshold}, up to {settings.max_detections} detections)."
        )
    if candidates.boxes.numel() == 0:
        return []
    keep, kept_scores = batched_nms(candidates.boxes, candidates.scores, candidates.labels, iou_threshold)
    keep, kept_scores = keep[:max_detections], kept_scores[:max_detections]
    width, height = candidates.image_size
    # As the image processor reports boxes: inside the original image.
    boxes = candidates.boxes[keep]
    boxes = torch.stack(
        [boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height), boxes[:, 2].clamp(0, width),
         boxes[:, 3].clamp(0, height)], dim=1,
    )  # fmt: skip
    labels = candidates.labels[keep]
    return [
        Detection(label=id2label[int(label)], label_id=int(label), score=float(score), box=[float(v) for v in box])
        for score, label, box in zip(kept_scores, labels, boxes)
    ]
