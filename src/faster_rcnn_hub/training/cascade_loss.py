"""Cascade R-CNN's second-stage training loss, as mmdetection 3.3.0's `CascadeRoIHead.loss` computes it.

Stage `s` (`config.cascade_stages[s]`) assigns its RoIs with its own IoU threshold (`MaxIoUAssigner` with
`pos_iou_thr = neg_iou_thr = min_pos_iou = iou_threshold`, no low-quality matches), samples them like the Faster
R-CNN head (`train_cfg`: 512 per image, at most 25% positives, the ground-truth boxes added as proposals), and
computes `loss_cls` (cross-entropy) and `loss_bbox` (smooth L1 with `beta=1` on class-agnostic deltas encoded
with the stage's own stds), both times the stage's `loss_weight`, named `s{s}.loss_cls` and `s{s}.loss_bbox`.
Between stages the sampled RoIs are refined by the stage's own deltas, without gradient (`BBoxHead.refine_bboxes`):
decoded and clipped to the image, with the ground-truth boxes the sampler added removed; they are the next
stage's proposals. The RPN's loss is the Faster R-CNN's but for its regression: smooth L1 with `beta=1/9`, as in
mmdetection's `cascade-rcnn_r50_fpn.py` (see `detection_loss.rpn_losses`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

import torch

from ..models.faster_rcnn.roi_align import boxes_to_rois
from ..models.faster_rcnn.training_settings import TrainingSettings
from .assigner import MaxIoUAssigner
from .box_head_loss import box_head_losses, sample_rois
from .losses import smooth_l1_loss
from .sampler import SamplingResult
from .targets import RoITargets, roi_targets

if TYPE_CHECKING:
    from ..models.faster_rcnn.cascade_roi_heads import CascadeStage
    from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection

# mmdetection's Cascade R-CNN configs regress with `SmoothL1Loss(beta=1.0)` in every box stage.
STAGE_SMOOTH_L1_BETA = 1.0


def stage_sampling(
    proposals: Sequence[torch.Tensor],
    gt_boxes: Sequence[torch.Tensor],
    gt_classes: Sequence[torch.Tensor],
    iou_threshold: float,
    settings: TrainingSettings,
) -> list[SamplingResult]:
    """Assign and sample one stage's RoIs, per image, with the stage's IoU threshold."""
    assigner = MaxIoUAssigner(iou_threshold, iou_threshold, iou_threshold, settings.rcnn_match_low_quality)
    return sample_rois(proposals, gt_boxes, gt_classes, assigner, settings)


@torch.no_grad()
def refine_rois(
    stage: CascadeStage,
    targets: Sequence[RoITargets],
    sampled: Sequence[SamplingResult],
    box_deltas: torch.Tensor,
    image_sizes: Sequence[tuple[int, int]],
) -> list[torch.Tensor]:
    """The next stage's proposals (mmdetection's `BBoxHead.refine_bboxes`): each image's sampled RoIs decoded by
    the stage's deltas with its coder, clipped to the image, the added ground-truth boxes left out.

    mmdetection gives background RoIs their predicted class (the argmax of the object logits) to pick that class's
    deltas; a cascade stage's regression is class-agnostic (the config requires it), one box per RoI whatever
    the class, so the class takes no part here.
    """
    refined = []
    for target, sample, deltas, size in zip(
        targets, sampled, box_deltas.detach().split([target.rois.size(0) for target in targets]), image_sizes
    ):
        boxes = stage.box_coder.decode(target.rois, deltas.float(), max_shape=size)
        keep = torch.ones(target.rois.size(0), dtype=torch.bool, device=boxes.device)
        keep[: target.num_positives] = ~sample.pos_is_gt
        refined.append(boxes[keep])
    return refined


def cascade_roi_losses(
    model: FasterRCNNForObjectDetection,
    features: Sequence[torch.Tensor],
    proposals: Sequence[torch.Tensor],
    gt_boxes: Sequence[torch.Tensor],
    gt_classes: Sequence[torch.Tensor],
    image_sizes: Sequence[tuple[int, int]],
    settings: TrainingSettings,
    normalizer: Callable[[float], float] | None = None,
) -> dict[str, torch.Tensor]:
    """Every stage's weighted `s{s}.loss_cls` and `s{s}.loss_bbox` (see the module docstring).

    Args:
        model: A Cascade R-CNN (`config.cascade_stages`).
        features: Its pyramid levels for the batch.
        proposals: Per image, `(N_i, 4)` first-stage proposals in the input frame.
        gt_boxes: Per image, `(K_i, 4)` ground-truth boxes in the input frame.
        gt_classes: Per image, `(K_i,)` their classes.
        image_sizes: Per image, the resized, unpadded `(height, width)`: the clip bounds of refined boxes.
        settings: `train_cfg` (sampling).
        normalizer: As for `detection_losses`.
    """
    roi_heads = model.roi_heads
    num_classes = roi_heads.num_classes
    stage_regression_loss = partial(smooth_l1_loss, beta=STAGE_SMOOTH_L1_BETA)
    losses: dict[str, torch.Tensor] = {}
    for index, (stage, stage_config) in enumerate(zip(roi_heads.stages, model.config.cascade_stages)):
        sampled = stage_sampling(proposals, gt_boxes, gt_classes, float(stage_config["iou_threshold"]), settings)
        targets = [roi_targets(sample, num_classes, stage.box_coder) for sample in sampled]
        pooled = roi_heads.roi_align(features, boxes_to_rois([target.rois for target in targets]))
        pooled = pooled.to(stage.box_predictor.cls_score.weight.dtype)
        class_logits, box_deltas = stage.box_predictor(stage.box_head(pooled))
        loss_cls, loss_bbox = box_head_losses(class_logits.float(), box_deltas.float(), targets, num_classes,
                                              class_agnostic=True, regression_loss=stage_regression_loss,
                                              normalizer=normalizer)  # fmt: skip
        weight = float(stage_config["loss_weight"])
        losses[f"s{index}.loss_cls"] = loss_cls * weight
        losses[f"s{index}.loss_bbox"] = loss_bbox * weight
        if index < len(roi_heads.stages) - 1:
            proposals = refine_rois(stage, targets, sampled, box_deltas, image_sizes)
    return losses
