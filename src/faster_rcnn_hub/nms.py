"""Non-maximum suppression with mmcv's semantics, computed by `torchvision.ops.nms` (CPU and CUDA).

mmcv and torchvision agree on the IoU formula and the `>` test, but not on how they order equal scores:
mmcv ranks boxes with `scores.sort(descending=True)`, torchvision with a stable sort. Ranking the boxes
ourselves first, exactly as mmcv does, makes torchvision's kernel return mmcv's answer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torchvision.ops import nms as torchvision_nms

# mmcv's `batched_nms` runs one NMS over all groups below this many boxes, and one per group above.
DEFAULT_SPLIT_THRESHOLD = 10000


def _as_float32_threshold(iou_threshold: float) -> float:
    # mmcv's kernel compares a float IoU with a float threshold, torchvision's with a double; handing
    # torchvision the float-rounded value makes both decide the same on the boundary.
    return float(np.float32(iou_threshold))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the boxes kept by NMS, ordered by decreasing score as mmcv orders them.

    Args:
        boxes: `(N, 4)` boxes as x1, y1, x2, y2.
        scores: `(N,)` scores.
        iou_threshold: A box is suppressed by a higher-ranked kept box whose IoU with it is larger than this.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = scores.sort(descending=True)[1]
    kept_ranks = torchvision_nms(boxes[order], scores[order], _as_float32_threshold(iou_threshold))
    return order[kept_ranks]


def batched_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    group_ids: torch.Tensor,
    iou_threshold: float,
    split_threshold: int = DEFAULT_SPLIT_THRESHOLD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """NMS within groups (classes, or pyramid levels), exactly as mmcv's `batched_nms` computes it.

    Boxes of different groups are kept apart by offsetting each group by `group * (max coordinate + 1)`,
    and IoU is computed on the offset boxes: for large offsets float32 rounding changes marginal decisions,
    so the offset is part of the result, not an implementation detail.

    Returns:
        `(keep, kept_scores)`: indices into the inputs, ordered by decreasing score, and their scores.
    """

    def suppress(group_boxes: torch.Tensor, group_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = nms(group_boxes, group_scores, iou_threshold)
        return keep, group_scores[keep]

    return batched_suppression(boxes, scores, group_ids, suppress, split_threshold)


def batched_suppression(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    group_ids: torch.Tensor,
    suppress: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    split_threshold: int = DEFAULT_SPLIT_THRESHOLD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """mmcv's `batched_nms` around any suppression `suppress(boxes, scores) -> (keep, kept_scores)` (NMS, or
    soft-NMS, which also lowers scores): group offsets, then one call below `split_threshold` boxes, else one
    call per group with the results merged by decreasing (returned) score.
    """
    if boxes.numel() == 0:
        empty = torch.empty(0, dtype=torch.long, device=boxes.device)
        return empty, scores[empty]
    max_coordinate = boxes.max()
    offsets = group_ids.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    boxes_for_nms = boxes + offsets[:, None]
    if boxes_for_nms.shape[0] < split_threshold:
        return suppress(boxes_for_nms, scores)

    kept_mask = torch.zeros_like(scores, dtype=torch.bool)
    scores_after = torch.zeros_like(scores)
    for group in torch.unique(group_ids):
        members = (group_ids == group).nonzero(as_tuple=False).view(-1)
        kept, kept_scores = suppress(boxes_for_nms[members], scores[members])
        kept_mask[members[kept]] = True
        scores_after[members[kept]] = kept_scores
    keep = kept_mask.nonzero(as_tuple=False).view(-1)
    kept_scores, order = scores_after[keep].sort(descending=True)
    return keep[order], kept_scores
