"""Max-IoU assignment of ground-truth boxes to anchors or proposals (mmdetection's `MaxIoUAssigner`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

# mmdetection's `bbox_overlaps` guards the union with this epsilon.
IOU_EPS = 1e-6


def box_iou(boxes: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """`(M, N)` IoU of x1, y1, x2, y2 boxes, computed as mmdetection's `bbox_overlaps` computes it."""
    if boxes.size(0) == 0 or others.size(0) == 0:
        return boxes.new_zeros((boxes.size(0), others.size(0)))
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    other_areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    top_left = torch.max(boxes[:, None, :2], others[None, :, :2])
    bottom_right = torch.min(boxes[:, None, 2:], others[None, :, 2:])
    overlap_sizes = (bottom_right - top_left).clamp(min=0)
    overlaps = overlap_sizes[..., 0] * overlap_sizes[..., 1]
    unions = torch.max(areas[:, None] + other_areas[None, :] - overlaps, overlaps.new_tensor([IOU_EPS]))
    return overlaps / unions


@dataclass
class AssignResult:
    """Which ground-truth box each candidate box was given.

    Attributes:
        gt_indices: `(N,)` 1-based index of the assigned ground-truth box, 0 for background, -1 for ignored.
        max_overlaps: `(N,)` best IoU of each candidate with any ground-truth box.
        labels: `(N,)` class of the assigned box, -1 where there is none.
    """

    gt_indices: torch.Tensor
    max_overlaps: torch.Tensor
    labels: torch.Tensor

    @property
    def num_candidates(self) -> int:
        return int(self.gt_indices.numel())

    def prepend_ground_truth(self, gt_labels: torch.Tensor) -> None:
        """Account for the ground-truth boxes put in front of the candidates (mmdetection's `add_gt_`)."""
        own_indices = torch.arange(1, gt_labels.numel() + 1, dtype=torch.long, device=gt_labels.device)
        self.gt_indices = torch.cat([own_indices, self.gt_indices])
        self.max_overlaps = torch.cat([self.max_overlaps.new_ones(gt_labels.numel()), self.max_overlaps])
        self.labels = torch.cat([gt_labels, self.labels])


class MaxIoUAssigner:
    """Gives each candidate box the ground-truth box it overlaps most, in mmdetection's four steps.

    1. every candidate is ignored (-1); 2. candidates whose best IoU is below `neg_iou_threshold` become
    background; 3. those whose best IoU reaches `pos_iou_threshold` take that box; 4. with
    `match_low_quality`, each ground-truth box also takes every candidate that ties its own best IoU, if that
    IoU reaches `min_pos_iou` (so that no object is left without a positive).

    Args:
        pos_iou_threshold: IoU at which a candidate becomes positive.
        neg_iou_threshold: IoU below which a candidate becomes background.
        min_pos_iou: Minimum IoU of a low-quality match.
        match_low_quality: Run step 4.
    """

    def __init__(
        self,
        pos_iou_threshold: float,
        neg_iou_threshold: float,
        min_pos_iou: float = 0.0,
        match_low_quality: bool = True,
    ) -> None:
        self.pos_iou_threshold = pos_iou_threshold
        self.neg_iou_threshold = neg_iou_threshold
        self.min_pos_iou = min_pos_iou
        self.match_low_quality = match_low_quality

    def assign(self, candidates: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor) -> AssignResult:
        """Assign `gt_boxes` `(K, 4)` with classes `gt_labels` `(K,)` to `candidates` `(N, 4)`."""
        num_candidates = candidates.size(0)
        gt_indices = torch.full((num_candidates,), -1, dtype=torch.long, device=candidates.device)
        labels = torch.full((num_candidates,), -1, dtype=torch.long, device=candidates.device)
        if gt_boxes.size(0) == 0 or num_candidates == 0:
            if gt_boxes.size(0) == 0:
                gt_indices[:] = 0
            return AssignResult(gt_indices, candidates.new_zeros((num_candidates,)), labels)

        overlaps = box_iou(gt_boxes, candidates)
        max_overlaps, best_gt = overlaps.max(dim=0)
        gt_max_overlaps, _ = overlaps.max(dim=1)

        gt_indices[(max_overlaps >= 0) & (max_overlaps < self.neg_iou_threshold)] = 0
        positive = max_overlaps >= self.pos_iou_threshold
        gt_indices[positive] = best_gt[positive] + 1
        if self.match_low_quality:
            # In order, so that a later box wins a tie for the same candidate, as in mmdetection.
            for gt_index in range(gt_boxes.size(0)):
                if gt_max_overlaps[gt_index] >= self.min_pos_iou:
                    gt_indices[overlaps[gt_index, :] == gt_max_overlaps[gt_index]] = gt_index + 1

        assigned = gt_indices > 0
        labels[assigned] = gt_labels[gt_indices[assigned] - 1]
        return AssignResult(gt_indices, max_overlaps, labels)
