"""Recall of object proposals: the share of ground-truth objects that the first N proposals of an image find at a
given IoU, as mmdetection's `eval_recalls` computes it (and Hosang et al.'s average recall over IoU 0.5-0.95).

Matching is one to one, greedily by IoU: of all pairs of a not-yet-matched object and a not-yet-used proposal
among the first N, the pair with the largest IoU is matched first, and so on until every object has its IoU (0
when no proposal is left). An object is recalled at threshold t when its matched IoU is at least t.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# IoU thresholds of the average recall (mmdetection's `np.arange(0.5, 0.96, 0.05)`), rounded to their decimals so
# that 0.7 is 0.7.
AVERAGE_RECALL_THRESHOLDS = tuple(round(0.5 + 0.05 * step, 2) for step in range(10))


def box_iou(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """`(n, m)` IoU of x1, y1, x2, y2 boxes (continuous coordinates, no "+1" pixel), in float64."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    others = np.asarray(others, dtype=np.float64).reshape(-1, 4)
    widths = np.clip(np.minimum(boxes[:, None, 2], others[None, :, 2]) - np.maximum(boxes[:, None, 0], others[None, :, 0]), 0, None)
    heights = np.clip(np.minimum(boxes[:, None, 3], others[None, :, 3]) - np.maximum(boxes[:, None, 1], others[None, :, 1]), 0, None)
    overlaps = widths * heights
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    other_areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = areas[:, None] + other_areas[None, :] - overlaps
    return overlaps / np.maximum(union, np.finfo(np.float64).eps)


def matched_ious(objects: np.ndarray, proposals: np.ndarray) -> np.ndarray:
    """Each object's IoU with the proposal matched to it (greedy one-to-one matching, see the module docstring).

    Args:
        objects: `(k, 4)` ground-truth boxes.
        proposals: `(n, 4)` proposals (the first N of an image's ranking).

    Returns:
        `(k,)` IoUs, 0 for objects left without a proposal.
    """
    ious = box_iou(objects, proposals)
    result = np.zeros(len(ious), dtype=np.float64)
    if ious.size == 0:
        return result
    for _ in range(min(ious.shape)):
        flat = int(ious.argmax())
        object_index, proposal_index = divmod(flat, ious.shape[1])
        if ious[object_index, proposal_index] < 0:
            break
        result[object_index] = ious[object_index, proposal_index]
        ious[object_index, :] = -1
        ious[:, proposal_index] = -1
    return result


@dataclass
class RecallTable:
    """Recall of a proposal method on a data set.

    Attributes:
        budgets: Proposals per image the recall is computed at (the first N of each image's ranking).
        iou_thresholds: IoU thresholds.
        recall: `recall[b][t]`: share of all objects found by the first `budgets[b]` proposals at
            `iou_thresholds[t]`.
        average_recall: Per budget, the mean recall over `AVERAGE_RECALL_THRESHOLDS`.
        num_objects: Objects counted.
        mean_proposals: Mean number of proposals an image has (a method may give fewer than a budget).
    """

    budgets: list[int]
    iou_thresholds: list[float]
    recall: list[list[float]]
    average_recall: list[float]
    num_objects: int
    mean_proposals: float

    def at(self, budget: int, iou_threshold: float) -> float:
        return self.recall[self.budgets.index(budget)][self.iou_thresholds.index(iou_threshold)]


def proposal_recall(
    objects: Sequence[np.ndarray],
    proposals: Sequence[np.ndarray],
    budgets: Sequence[int],
    iou_thresholds: Sequence[float] = AVERAGE_RECALL_THRESHOLDS,
) -> RecallTable:
    """Recall of ranked proposals against ground truth, over a data set.

    Args:
        objects: Per image, `(k_i, 4)` ground-truth boxes (crowd boxes left out).
        proposals: Per image, `(n_i, 4)` proposals, best first, in the same pixels.
        budgets: Numbers of proposals per image to compute the recall at.
        iou_thresholds: IoU thresholds; the average recall uses `AVERAGE_RECALL_THRESHOLDS` whatever these are.
    """
    if len(objects) != len(proposals):
        raise ValueError(f"{len(objects)} images of ground truth but {len(proposals)} of proposals.")
    thresholds = sorted(set(iou_thresholds) | set(AVERAGE_RECALL_THRESHOLDS))
    num_objects = int(sum(len(boxes) for boxes in objects))
    recall, average_recall = [], []
    for budget in budgets:
        ious = np.concatenate(
            [matched_ious(truth, ranked[:budget]) for truth, ranked in zip(objects, proposals)] or [np.zeros(0)]
        )
        found = {threshold: float((ious >= threshold).sum()) / max(num_objects, 1) for threshold in thresholds}
        recall.append([found[threshold] for threshold in iou_thresholds])
        average_recall.append(float(np.mean([found[threshold] for threshold in AVERAGE_RECALL_THRESHOLDS])))
    return RecallTable(
        budgets=list(budgets),
        iou_thresholds=list(iou_thresholds),
        recall=recall,
        average_recall=average_recall,
        num_objects=num_objects,
        mean_proposals=float(np.mean([len(ranked) for ranked in proposals])) if len(proposals) else 0.0,
    )


__all__ = ["AVERAGE_RECALL_THRESHOLDS", "RecallTable", "box_iou", "matched_ious", "proposal_recall"]
