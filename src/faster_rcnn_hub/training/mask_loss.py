"""Mask R-CNN's mask loss, as mmdetection 3.3.0's `FCNMaskHead.loss_and_target` computes it.

The mask RoIs are the box stage's sampled positives (ground-truth boxes added as proposals included), pooled
again by the mask RoI extractor (RoIAlign 14x14) and run through the mask head. Each RoI's target is its matched
object's mask in the input frame, cropped and resized to the mask size at the RoI (`mask_target_single`: the RoI
clipped to the mask canvas, then `BitmapMasks.crop_and_resize`, RoIAlign with `aligned=True` and adaptive
sampling on the 0/1 mask, binarized at >= 0.5). `loss_mask` is the binary cross-entropy of the logit map of the
RoI's ground-truth class (the one map of a class-agnostic head) against the target, averaged over every pixel of
every positive RoI (`CrossEntropyLoss(use_mask=True, loss_weight=1.0)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from ..models.faster_rcnn.mask_head import mask_logits_of_boxes
from .sampler import SamplingResult

if TYPE_CHECKING:
    from ..models.faster_rcnn.roi_heads import RoIHeads

# mmdetection's Mask R-CNN configs: `loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0)`.
MASK_LOSS_WEIGHT = 1.0
# `BitmapMasks.crop_and_resize(binarize=True)`: a target pixel is foreground where the resampled mask is >= 0.5.
MASK_TARGET_BINARIZE_THRESHOLD = 0.5


def mask_targets(
    pos_boxes: torch.Tensor, pos_gt_indices: torch.Tensor, gt_masks: torch.Tensor, mask_size: int
) -> torch.Tensor:
    """`(P, mask_size, mask_size)` float 0/1 targets of one image's positive RoIs (mmdetection's
    `mask_target_single`).

    Args:
        pos_boxes: `(P, 4)` positive RoIs, x1, y1, x2, y2 in the input frame.
        pos_gt_indices: `(P,)` index into `gt_masks` of each RoI's object.
        gt_masks: `(K, H, W)` the objects' masks in the input frame (0/1, any dtype).
        mask_size: Side of the targets (the mask head's output, 28).
    """
    if pos_boxes.size(0) == 0:
        return pos_boxes.new_zeros((0, mask_size, mask_size), dtype=torch.float32)
    height, width = gt_masks.shape[-2:]
    boxes = pos_boxes.detach().float().clone()
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    # RoI i crops mask i of the gathered stack (mmdetection's `fake_inds`).
    batch_indices = torch.arange(boxes.size(0), device=boxes.device, dtype=boxes.dtype)[:, None]
    selected = gt_masks.index_select(0, pos_gt_indices.to(gt_masks.device)).to(boxes.device, torch.float32)
    resampled = roi_align(selected[:, None], torch.cat([batch_indices, boxes], dim=1), (mask_size, mask_size),
                          spatial_scale=1.0, sampling_ratio=0, aligned=True).squeeze(1)  # fmt: skip
    return (resampled >= MASK_TARGET_BINARIZE_THRESHOLD).float()


def mask_cross_entropy(
    mask_logits: torch.Tensor, targets: torch.Tensor, classes: torch.Tensor, class_agnostic: bool
) -> torch.Tensor:
    """Mean binary cross-entropy of each RoI's own class's logit map against its target (mmdetection's
    `mask_cross_entropy`); a zero that keeps the graph when there is no positive RoI.

    Args:
        mask_logits: `(P, classes or 1, S, S)` the mask head's logits.
        targets: `(P, S, S)` 0/1 targets.
        classes: `(P,)` ground-truth class of each RoI.
        class_agnostic: The head has one map for every class.
    """
    if mask_logits.size(0) == 0:
        return mask_logits.sum()
    channels = torch.zeros_like(classes) if class_agnostic else classes
    rows = torch.arange(mask_logits.size(0), device=mask_logits.device)
    selected = mask_logits[rows, channels.to(mask_logits.device)]
    return F.binary_cross_entropy_with_logits(selected.float(), targets.to(selected.device), reduction="mean")


def mask_loss(
    roi_heads: RoIHeads,
    features: Sequence[torch.Tensor],
    sampled: Sequence[SamplingResult],
    gt_masks: Sequence[torch.Tensor],
) -> torch.Tensor:
    """`loss_mask` of a batch: the mask head run on every image's sampled positive RoIs (see the module docstring).

    Args:
        roi_heads: A Mask R-CNN's RoI heads (`mask_roi_align`, `mask_head`, `mask_size`).
        features: The pyramid levels of the batch.
        sampled: Per image, the box stage's sampling (positives first, with their objects' indices).
        gt_masks: Per image, `(K_i, H, W)` the objects' masks in the input frame.
    """
    pos_boxes = [sample.pos_boxes.detach() for sample in sampled]
    logits = mask_logits_of_boxes(roi_heads.mask_roi_align, roi_heads.mask_head, features, pos_boxes)
    targets = torch.cat([
        mask_targets(boxes, sample.pos_gt_indices, masks, roi_heads.mask_size)
        for boxes, sample, masks in zip(pos_boxes, sampled, gt_masks)
    ])  # fmt: skip
    classes = torch.cat([sample.pos_gt_labels for sample in sampled])
    return MASK_LOSS_WEIGHT * mask_cross_entropy(logits, targets, classes, roi_heads.mask_head.class_agnostic)
