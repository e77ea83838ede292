"""The fixtures' rule for comparing detections with mmdetection's (see tests/fixtures/README.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchvision.ops import box_iou

MIN_MATCHED_FRACTION = 0.99
MIN_IOU = 0.99
MAX_BOX_DIFFERENCE = 0.05  # pixels
MAX_SCORE_DIFFERENCE = 1e-3


@dataclass
class Comparison:
    matched: int
    reference_count: int
    count: int
    max_box_difference: float
    max_score_difference: float

    @property
    def passes(self) -> bool:
        return (
            self.count == self.reference_count
            and self.matched >= MIN_MATCHED_FRACTION * self.reference_count
            and self.max_box_difference <= MAX_BOX_DIFFERENCE
            and self.max_score_difference <= MAX_SCORE_DIFFERENCE
        )


def match_detections(
    reference_boxes: Sequence,
    reference_labels: Sequence[int],
    boxes: Sequence,
    labels: Sequence[int],
) -> list[tuple[int, int]]:
    """`(reference index, index)` pairs: each reference detection, in order, matched to the unused detection of the
    same label with the highest IoU, if that IoU is at least 0.99."""
    reference_boxes = torch.as_tensor(reference_boxes, dtype=torch.float64).reshape(-1, 4)
    boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    reference_labels = [int(label) for label in reference_labels]
    labels = [int(label) for label in labels]
    used: set[int] = set()
    pairs: list[tuple[int, int]] = []
    if len(reference_boxes) and len(boxes):
        overlaps = box_iou(reference_boxes, boxes)
        for reference_index in range(len(reference_boxes)):
            candidates = [
                index
                for index in range(len(boxes))
                if index not in used and labels[index] == reference_labels[reference_index]
            ]
            if not candidates:
                continue
            best = max(candidates, key=lambda index: overlaps[reference_index, index].item())
            if overlaps[reference_index, best] >= MIN_IOU:
                used.add(best)
                pairs.append((reference_index, best))
    return pairs


def compare_detections(
    reference_boxes: Sequence,
    reference_scores: Sequence[float],
    reference_labels: Sequence[int],
    boxes: Sequence,
    scores: Sequence[float],
    labels: Sequence[int],
) -> Comparison:
    """Match the detections (`match_detections`); report the match count and the largest differences on matched
    pairs."""
    reference_boxes = torch.as_tensor(reference_boxes, dtype=torch.float64).reshape(-1, 4)
    boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    pairs = match_detections(reference_boxes, reference_labels, boxes, labels)
    box_difference = max(
        ((reference_boxes[i] - boxes[j]).abs().max().item() for i, j in pairs), default=0.0
    )
    score_difference = max((abs(float(reference_scores[i]) - float(scores[j])) for i, j in pairs), default=0.0)
    return Comparison(len(pairs), len(reference_boxes), len(boxes), box_difference, score_difference)


def assert_matches(comparison: Comparison, what: str) -> None:
    assert comparison.passes, f"{what} does not match mmdetection: {comparison}"
