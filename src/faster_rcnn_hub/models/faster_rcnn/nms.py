"""Non-maximum suppression with mmcv's semantics: hard NMS computed by `torchvision.ops.nms` (CPU and CUDA), and
soft-NMS written in PyTorch.

NMS: mmcv and torchvision agree on the IoU formula and the `>` test, but not on how they order equal scores:
mmcv ranks boxes with `scores.sort(descending=True)`, torchvision with a stable sort. Ranking the boxes
ourselves first, exactly as mmcv does, makes torchvision's kernel return mmcv's answer.

Soft-NMS (`mmcv.ops.soft_nms`, CPU kernel `softnms` in `ops/csrc/pytorch/cpu/nms.cpp`) does not drop the boxes that
overlap a selected one; it lowers their scores (`linear`: times `1 - IoU` when the IoU reaches the threshold;
`gaussian`: times `exp(-IoU**2 / sigma)`; `naive`: times 0 when the IoU reaches the threshold) and drops a box
only once its score falls below `min_score`. Boxes come out in the order they were selected, with their lowered
scores. mmcv's kernel keeps its boxes in one array and reorders it as it goes: the selected box is swapped to the
front, and a dropped box is overwritten by the last box of the array. Which box wins a tie of scores depends on
that order, so `soft_nms` reproduces the exact permutation, one selection step at a time (each step vectorized
over the remaining boxes).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from torchvision.ops import nms as torchvision_nms

from .architecture import SOFT_NMS_METHODS
from .errors import InvalidConfigError

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


def soft_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    sigma: float = 0.5,
    min_score: float = 1e-3,
    method: str = "linear",
    max_selections: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-NMS of one set of boxes, as mmcv computes it (with `offset=0`).

    Args:
        boxes: `(N, 4)` boxes as x1, y1, x2, y2.
        scores: `(N,)` scores.
        iou_threshold: `linear` and `naive` lower the score of a box whose IoU with a selected box is at least
            this; `gaussian` ignores it.
        sigma: Width of the `gaussian` penalty.
        min_score: A box whose lowered score falls below this is dropped.
        method: `"linear"` (mmcv's default), `"gaussian"` or `"naive"`.
        max_selections: Stop after this many boxes are selected. Boxes are selected in order of decreasing
            (lowered) score and later steps only lower the scores of boxes not yet selected, so the first
            `max_selections` results are exactly those of a full run.

    Returns:
        `(keep, kept_scores)`: indices into the inputs in selection order (decreasing score), and their lowered
        scores.
    """
    if method not in SOFT_NMS_METHODS:
        raise InvalidConfigError(f"soft-NMS method must be one of {list(SOFT_NMS_METHODS)}, got {method!r}.")
    count = boxes.size(0)
    steps = count if max_selections is None else min(count, max_selections)
    if steps <= 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device), scores.new_empty(0)
    # mmcv's kernel computes in float32 and takes its parameters as C++ floats; comparing with float32
    # scalars decides boundary cases as it does.
    x1, y1, x2, y2 = (boxes[:, index].clone() for index in range(4))
    current_scores = scores.clone()
    areas = (x2 - x1) * (y2 - y1)
    indices = torch.arange(count, device=boxes.device)
    columns = [x1, y1, x2, y2, current_scores, areas, indices]
    threshold = torch.tensor(iou_threshold, dtype=scores.dtype, device=scores.device)
    score_floor = torch.tensor(min_score, dtype=scores.dtype, device=scores.device)
    sigma_value = torch.tensor(sigma, dtype=scores.dtype, device=scores.device)

    selected_scores = []
    remaining = count  # boxes [0, remaining) are still in play; the kernel's `nboxes`
    step = 0
    while step < min(steps, remaining):
        # The highest score among the boxes not yet selected; the first one on ties, as the kernel's strict `<`.
        best = step + int(torch.argmax(current_scores[step:remaining]))
        if best != step:
            for column in columns:
                column[[step, best]] = column[[best, step]]
        selected_scores.append(current_scores[step].clone())
        rest = slice(step + 1, remaining)
        if rest.start < rest.stop:
            weights = _overlap_weights(columns, step, rest, method, threshold, sigma_value)
            current_scores[rest] = current_scores[rest] * weights
            remaining = step + 1 + _drop_low_scores(columns, rest, score_floor)
        step += 1
    return indices[:step].clone(), torch.stack(selected_scores)


def _overlap_weights(
    columns: list[torch.Tensor], step: int, rest: slice, method: str, threshold: torch.Tensor, sigma: torch.Tensor
) -> torch.Tensor:
    x1, y1, x2, y2, _, areas, _ = columns
    width = (torch.minimum(x2[rest], x2[step]) - torch.maximum(x1[rest], x1[step])).clamp(min=0)
    height = (torch.minimum(y2[rest], y2[step]) - torch.maximum(y1[rest], y1[step])).clamp(min=0)
    intersection = width * height
    overlap = intersection / (areas[step] + areas[rest] - intersection)
    if method == "gaussian":
        return torch.exp(-(overlap * overlap) / sigma)
    reaches = overlap >= threshold
    lowered = 1 - overlap if method == "linear" else torch.zeros_like(overlap)
    return torch.where(reaches, lowered, torch.ones_like(overlap))


def _drop_low_scores(columns: list[torch.Tensor], rest: slice, score_floor: torch.Tensor) -> int:
    """Remove the boxes of `rest` whose score fell below `score_floor` the way mmcv's kernel does, and return how
    many boxes of `rest` remain (now packed at its start).

    The kernel walks `rest` from the front; each dropped box is overwritten by the last box still in play
    (dropped boxes among those are skipped). So the holes below the new end, in increasing order, receive the
    surviving boxes from beyond it, in decreasing order.
    """
    kept = columns[4][rest] >= score_floor
    survivors = int(kept.sum())
    length = rest.stop - rest.start
    if survivors == length:
        return survivors
    positions = torch.arange(length, device=kept.device)
    holes = positions[:survivors][~kept[:survivors]]
    donors = positions[survivors:][kept[survivors:]].flip(0)
    order = positions[:survivors].clone()
    order[holes] = donors
    for column in columns:
        segment = column[rest]
        column[rest.start : rest.start + survivors] = segment[order]
    return survivors


def batched_soft_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    group_ids: torch.Tensor,
    iou_threshold: float,
    sigma: float = 0.5,
    min_score: float = 1e-3,
    method: str = "linear",
    max_num: int | None = None,
    split_threshold: int = DEFAULT_SPLIT_THRESHOLD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-NMS within groups (classes), as mmcv's `batched_nms` with `nms_cfg=dict(type='soft_nms', ...)`.

    Args:
        max_num: How many results the caller keeps (mmdetection's `max_per_img`). With fewer than
            `split_threshold` boxes, one soft-NMS runs over all groups and stops after `max_num` selections,
            which gives the same first `max_num` results; above it, each group runs to the end, as mmcv does.

    Returns:
        `(keep, kept_scores)`: indices into the inputs, ordered by decreasing lowered score, and those scores.
    """
    limit = max_num if boxes.size(0) < split_threshold else None
    suppress = partial(
        soft_nms, iou_threshold=iou_threshold, sigma=sigma, min_score=min_score, method=method, max_selections=limit
    )
    return batched_suppression(boxes, scores, group_ids, suppress, split_threshold)


__all__ = ["DEFAULT_SPLIT_THRESHOLD", "batched_nms", "batched_soft_nms", "batched_suppression", "nms", "soft_nms"]
