"""The second stage's sampling and box-head losses, shared by the Faster R-CNN head and every Cascade R-CNN stage.

mmdetection's `StandardRoIHead.loss` and each stage of `CascadeRoIHead.loss` do the same two steps with their own
settings: assign each image's proposals with a `MaxIoUAssigner` and sample them (`RandomSampler`, ground-truth
boxes added as proposals), then `BBoxHead.loss`: cross-entropy over the sampled RoIs and a regression loss over
the positives' deltas of their own class (or the one class-agnostic box), both divided by the sampled RoI count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..models.faster_rcnn.training_settings import TrainingSettings
from .assigner import MaxIoUAssigner
from .losses import softmax_cross_entropy
from .sampler import RandomSampler, SamplingResult
from .targets import RoITargets

# (predictions, targets, weights, avg_factor) -> loss: `losses.l1_loss`, or `smooth_l1_loss` with its beta bound.
RegressionLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]


def sample_rois(
    proposals: Sequence[torch.Tensor],
    gt_boxes: Sequence[torch.Tensor],
    gt_classes: Sequence[torch.Tensor],
    assigner: MaxIoUAssigner,
    settings: TrainingSettings,
) -> list[SamplingResult]:
    """Assign and sample each image's proposals (`(N_i, 4)` or more columns, the first four the box) against its
    ground truth, with `train_cfg`'s second-stage sampler."""
    sampler = RandomSampler(
        settings.rcnn_num_samples, settings.rcnn_pos_fraction, add_gt_as_proposals=settings.rcnn_add_gt_as_proposals
    )
    results = []
    for boxes, truth_boxes, truth_classes in zip(proposals, gt_boxes, gt_classes):
        boxes = boxes[:, :4].detach()
        assignment = assigner.assign(boxes, truth_boxes, truth_classes)
        results.append(sampler.sample(assignment, boxes, truth_boxes, truth_classes))
    return results


def box_head_losses(
    class_logits: torch.Tensor,
    box_deltas: torch.Tensor,
    targets: Sequence[RoITargets],
    num_classes: int,
    class_agnostic: bool,
    regression_loss: RegressionLoss,
    normalizer: Callable[[float], float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`loss_cls` and `loss_bbox` of the sampled RoIs' `targets` (mmdetection's `BBoxHead.loss`).

    Args:
        class_logits: `(R, num_classes + 1)` logits of the batch's sampled RoIs, in `targets`' order.
        box_deltas: `(R, 4)` class-agnostic or `(R, num_classes * 4)` deltas.
        targets: Per image, the RoIs' labels (`num_classes` for background) and delta targets.
        num_classes: Object classes.
        class_agnostic: One box per RoI rather than one per class.
        regression_loss: The box loss (L1 for the Faster R-CNN head, smooth L1 for a cascade stage).
        normalizer: Turns the batch's RoI count into the one to divide by (see `detection_losses`).
    """
    labels = torch.cat([target.labels for target in targets])
    delta_targets = torch.cat([target.deltas for target in targets])
    num_rois = labels.numel()
    avg_factor = float(num_rois) if normalizer is None else normalizer(float(num_rois))
    loss_cls = softmax_cross_entropy(class_logits, labels, torch.ones_like(labels, dtype=class_logits.dtype),
                                     max(avg_factor, 1.0))  # fmt: skip
    positive = labels < num_classes
    if not bool(positive.any()):
        return loss_cls, box_deltas[positive].sum()
    if class_agnostic:
        positive_deltas = box_deltas.view(num_rois, -1)[positive]
    else:
        positive_deltas = box_deltas.view(num_rois, num_classes, 4)[positive, labels[positive]]
    positive_targets = delta_targets[positive]
    loss_bbox = regression_loss(positive_deltas, positive_targets, torch.ones_like(positive_targets), avg_factor)
    return loss_cls, loss_bbox


__all__ = ["RegressionLoss", "box_head_losses", "sample_rois"]
