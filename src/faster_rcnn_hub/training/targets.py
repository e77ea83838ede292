"""Learning targets of the two stages, from assigned and sampled candidates (mmdetection's `get_targets`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..models.faster_rcnn.boxes import DeltaXYWHBoxCoder
from .assigner import MaxIoUAssigner
from .sampler import RandomSampler, SamplingResult

# mmdetection pads each image to a multiple of 32 before batching, and anchors count as valid up to that
# padded extent (`AnchorGenerator.valid_flags` with the image's `pad_shape`).
PAD_SIZE_DIVISOR = 32


@dataclass
class AnchorTargets:
    """RPN targets of one image, one row per anchor (all levels, in `AnchorGenerator` order).

    Attributes:
        objectness: `(A,)` 1.0 for sampled positives, 0.0 otherwise.
        objectness_weights: `(A,)` 1.0 for sampled anchors (positive or negative), 0.0 otherwise.
        deltas: `(A, 4)` encoded boxes of the positives.
        delta_weights: `(A, 4)` 1.0 on the rows of sampled positives.
        num_samples: Sampled anchors (the loss normaliser).
    """

    objectness: torch.Tensor
    objectness_weights: torch.Tensor
    deltas: torch.Tensor
    delta_weights: torch.Tensor
    num_samples: int


@dataclass
class RoITargets:
    """Second-stage targets of one image, one row per sampled RoI (positives first).

    Attributes:
        rois: `(S, 4)` sampled boxes (positives, then negatives).
        labels: `(S,)` class of each positive, `num_classes` (background) for negatives.
        deltas: `(S, 4)` encoded ground-truth boxes of the positives, zeros for negatives.
        num_positives: Number of positive rows.
    """

    rois: torch.Tensor
    labels: torch.Tensor
    deltas: torch.Tensor
    num_positives: int


def valid_anchor_mask(
    feature_sizes: Sequence[tuple[int, int]],
    strides: Sequence[int],
    num_anchors_per_location: int,
    image_size: tuple[int, int],
    device: torch.device,
) -> torch.Tensor:
    """`(A,)` flags of the anchors that lie on the image (its extent padded to 32), not on batch padding."""
    padded_height = math.ceil(image_size[0] / PAD_SIZE_DIVISOR) * PAD_SIZE_DIVISOR
    padded_width = math.ceil(image_size[1] / PAD_SIZE_DIVISOR) * PAD_SIZE_DIVISOR
    flags = []
    for (height, width), stride in zip(feature_sizes, strides):
        valid_height = min(math.ceil(padded_height / stride), height)
        valid_width = min(math.ceil(padded_width / stride), width)
        rows = torch.zeros(height, dtype=torch.bool, device=device)
        columns = torch.zeros(width, dtype=torch.bool, device=device)
        rows[:valid_height] = True
        columns[:valid_width] = True
        grid = rows[:, None] & columns[None, :]
        flags.append(grid.reshape(-1, 1).expand(-1, num_anchors_per_location).reshape(-1))
    return torch.cat(flags)


def anchor_targets(
    anchors: torch.Tensor,
    valid: torch.Tensor,
    gt_boxes: torch.Tensor,
    assigner: MaxIoUAssigner,
    sampler: RandomSampler,
    box_coder: DeltaXYWHBoxCoder,
) -> AnchorTargets:
    """RPN targets of one image (mmdetection's `AnchorHead._get_targets_single`, class-agnostic)."""
    num_anchors = anchors.size(0)
    valid_indices = valid.nonzero(as_tuple=False).view(-1)
    valid_anchors = anchors[valid_indices]
    # The RPN sees every object as one class.
    gt_labels = torch.zeros(gt_boxes.size(0), dtype=torch.long, device=anchors.device)
    assignment = assigner.assign(valid_anchors, gt_boxes, gt_labels)
    sampled = sampler.sample(assignment, valid_anchors, gt_boxes, gt_labels)

    objectness = anchors.new_zeros(num_anchors)
    objectness_weights = anchors.new_zeros(num_anchors)
    deltas = anchors.new_zeros((num_anchors, 4))
    delta_weights = anchors.new_zeros((num_anchors, 4))
    positives = valid_indices[sampled.pos_indices]
    negatives = valid_indices[sampled.neg_indices]
    if positives.numel() > 0:
        deltas[positives] = box_coder.encode(sampled.pos_boxes, sampled.pos_gt_boxes).to(deltas.dtype)
        delta_weights[positives] = 1.0
        objectness[positives] = 1.0
        objectness_weights[positives] = 1.0
    objectness_weights[negatives] = 1.0
    return AnchorTargets(objectness, objectness_weights, deltas, delta_weights, sampled.num_samples)


def roi_targets(sampled: SamplingResult, num_classes: int, box_coder: DeltaXYWHBoxCoder) -> RoITargets:
    """Second-stage targets of one image (mmdetection's `BBoxHead._get_targets_single`)."""
    pos_boxes = sampled.pos_boxes
    rois = torch.cat([pos_boxes, sampled.neg_boxes], dim=0)
    num_positives = pos_boxes.size(0)
    labels = torch.full((rois.size(0),), num_classes, dtype=torch.long, device=rois.device)
    deltas = rois.new_zeros((rois.size(0), 4))
    if num_positives > 0:
        labels[:num_positives] = sampled.pos_gt_labels
        deltas[:num_positives] = box_coder.encode(pos_boxes, sampled.pos_gt_boxes).to(deltas.dtype)
    return RoITargets(rois=rois, labels=labels, deltas=deltas, num_positives=num_positives)
