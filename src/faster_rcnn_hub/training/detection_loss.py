"""Faster R-CNN's training loss: RPN and second-stage targets, sampling and losses, as mmdetection computes them.

`FasterRCNNForObjectDetection.forward(..., labels=...)` calls `forward_losses` (the package installs it into the
model code, which does not import this module); the trainer calls `detection_losses`, and the alternating schedule
calls it with one stage at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InvalidAnnotationError, InvalidConfigError
from ..models.faster_rcnn.roi_align import boxes_to_rois
from ..models.faster_rcnn.training_settings import TrainingSettings
from .assigner import MaxIoUAssigner
from .box_head_loss import box_head_losses, sample_rois
from .cascade_loss import cascade_roi_losses
from .losses import l1_loss, sigmoid_cross_entropy, smooth_l1_loss
from .mask_loss import mask_loss
from .sampler import RandomSampler
from .targets import anchor_targets, roi_targets, valid_anchor_mask

if TYPE_CHECKING:
    from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection

STAGES = ("rpn", "rcnn")

# mmdetection's Cascade R-CNN configs train the RPN's regression with `SmoothL1Loss(beta=1/9)` (its Faster R-CNN
# configs with `L1Loss`).
CASCADE_RPN_SMOOTH_L1_BETA = 1.0 / 9.0

# Maps a loss's local normaliser (sampled anchors or RoIs of this process's images) to the one it divides by; a
# multi-process run sums it over the processes, so that each term is that of the whole batch.
Normalizer = Callable[[float], float]


@dataclass
class GroundTruth:
    """Ground truth of one image: `(K, 4)` x1, y1, x2, y2 boxes in the network's input frame and `(K,)` classes;
    for a Mask R-CNN also `(K, H, W)` 0/1 masks in that frame."""

    boxes: torch.Tensor
    classes: torch.Tensor
    masks: torch.Tensor | None = None


@dataclass
class DetectionLosses:
    """`loss` (the sum), `loss_dict` (each term, mmdetection's names) and the proposals the second stage used."""

    loss: torch.Tensor
    loss_dict: dict[str, torch.Tensor]
    proposals: list[torch.Tensor] | None


def parse_labels(
    labels: Any, batch_size: int, num_classes: int, device: torch.device, with_masks: bool = False
) -> list[GroundTruth]:
    """Check the `labels` argument of the model and turn it into one `GroundTruth` per image (with each
    object's mask when `with_masks`: a Mask R-CNN's labels need `masks`)."""
    if not isinstance(labels, Sequence) or isinstance(labels, (str, bytes)):
        raise InvalidAnnotationError(
            "labels must be a list with one {'class_labels': LongTensor[n], 'boxes': FloatTensor[n, 4]} per image, "
            f"got {type(labels).__name__}."
        )
    if len(labels) != batch_size:
        raise InvalidAnnotationError(f"labels has {len(labels)} entries for a batch of {batch_size} images.")
    parsed = []
    for index, target in enumerate(labels):
        if not isinstance(target, Mapping) or "class_labels" not in target or "boxes" not in target:
            raise InvalidAnnotationError(
                f"labels[{index}] must be a mapping with 'class_labels' and 'boxes', got "
                f"{sorted(target) if isinstance(target, Mapping) else type(target).__name__}."
            )
        boxes = torch.as_tensor(target["boxes"], device=device)
        classes = torch.as_tensor(target["class_labels"], device=device)
        if boxes.numel() == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.dim() != 2 or boxes.size(1) != 4:
            raise InvalidAnnotationError(f"labels[{index}]['boxes'] must have shape (n, 4), got {tuple(boxes.shape)}.")
        if classes.dim() != 1 or classes.numel() != boxes.size(0):
            raise InvalidAnnotationError(
                f"labels[{index}]['class_labels'] must have shape ({boxes.size(0)},), got {tuple(classes.shape)}."
            )
        if classes.is_floating_point() or classes.dtype == torch.bool:
            raise InvalidAnnotationError(f"labels[{index}]['class_labels'] must be integers, got {classes.dtype}.")
        boxes = boxes.float()
        if not bool(torch.isfinite(boxes).all()):
            raise InvalidAnnotationError(f"labels[{index}]['boxes'] contains NaN or infinite values.")
        if bool(((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any()):
            raise InvalidAnnotationError(
                f"labels[{index}]['boxes'] has boxes with x2 <= x1 or y2 <= y1; boxes are x1, y1, x2, y2 and must "
                "have a positive size (FasterRCNNImageProcessor drops degenerate COCO boxes)."
            )
        if classes.numel() and (int(classes.min()) < 0 or int(classes.max()) >= num_classes):
            raise InvalidAnnotationError(
                f"labels[{index}]['class_labels'] must lie in [0, {num_classes - 1}], got {classes.tolist()}."
            )
        masks = _parse_masks(target, index, boxes.size(0), device) if with_masks else None
        parsed.append(GroundTruth(boxes=boxes, classes=classes.long(), masks=masks))
    return parsed


def _parse_masks(target: Mapping[str, Any], index: int, num_objects: int, device: torch.device) -> torch.Tensor:
    """The `(n, H, W)` masks of `labels[index]`, checked against its `n` boxes."""
    if target.get("masks") is None:
        raise InvalidAnnotationError(
            f"labels[{index}] has no 'masks': a Mask R-CNN (config.mask_head) trains on each object's mask, a "
            "(n, height, width) tensor in the input frame (DetectionDataCollator(..., with_masks=True) adds them "
            "from COCO segmentations)."
        )
    masks = torch.as_tensor(target["masks"], device=device)
    if masks.dim() != 3 or masks.size(0) != num_objects:
        raise InvalidAnnotationError(
            f"labels[{index}]['masks'] must have shape ({num_objects}, height, width), one mask per box, got "
            f"{tuple(masks.shape)}."
        )
    return masks


def forward_losses(
    model: FasterRCNNForObjectDetection,
    features: Sequence[torch.Tensor],
    image_sizes: torch.Tensor,
    labels: Any,
    proposals: Sequence[torch.Tensor] | None = None,
) -> DetectionLosses:
    """What `model(pixel_values, labels=labels)` computes: the checked `labels`, then both stages' losses; with
    external `proposals` (already checked by the model), the second stage's alone, on those boxes (Fast R-CNN)."""
    ground_truth = parse_labels(labels, image_sizes.size(0), model.config.num_classes, image_sizes.device,
                                with_masks=model.config.mask_head is not None)  # fmt: skip
    if proposals is not None:
        return detection_losses(model, features, image_sizes, ground_truth, stages=("rcnn",), proposals=proposals)
    return detection_losses(model, features, image_sizes, ground_truth)


def detection_losses(
    model: FasterRCNNForObjectDetection,
    features: Sequence[torch.Tensor],
    image_sizes: torch.Tensor,
    ground_truth: Sequence[GroundTruth],
    stages: Sequence[str] = STAGES,
    proposals: Sequence[torch.Tensor] | None = None,
    normalizer: Normalizer | None = None,
) -> DetectionLosses:
    """Losses of the RPN and/or the second stage on a batch.

    Args:
        model: The detector (its `rpn`, `roi_heads` and `config.train_cfg` are used).
        features: Its pyramid levels for the batch.
        image_sizes: `(batch, 2)` resized, unpadded `(height, width)`.
        ground_truth: Per image, boxes in the input frame and classes.
        stages: `"rpn"`, `"rcnn"` or both.
        proposals: Per image, `(N_i, 4)` proposals for the second stage; `None` makes them with the model's RPN
            (train-time settings, no gradient through them).
        normalizer: Turns each loss's normaliser over this batch into the one to divide by (a multi-process run
            passes the sum over all processes); `None` divides by this batch's own.
    """
    unknown = set(stages) - set(STAGES)
    if unknown or not stages:
        raise ValueError(f"stages must be a non-empty subset of {STAGES}, got {list(stages)}.")
    settings = TrainingSettings.from_mapping(model.config.train_cfg)
    sizes = [(int(height), int(width)) for height, width in image_sizes.tolist()]
    loss_dict: dict[str, torch.Tensor] = {}
    if "rpn" in stages or ("rcnn" in stages and proposals is None):
        objectness, box_deltas = model.rpn.head(features)
        anchors = model.rpn.anchor_generator.grid_anchors(
            [feature.shape[-2:] for feature in features], device=features[0].device, dtype=features[0].dtype
        )
        if "rpn" in stages:
            loss_dict.update(
                rpn_losses(model, objectness, box_deltas, anchors, features, sizes, ground_truth, settings,
                           normalizer)
            )
        if "rcnn" in stages and proposals is None:
            proposals = training_proposals(model, objectness, box_deltas, anchors, sizes, settings)
    if "rcnn" in stages and model.config.cascade_stages is not None and model.config.mask_head is not None:
        raise InvalidConfigError(
            "Training a Cascade Mask R-CNN (config.cascade_stages with config.mask_head) is not supported: train a "
            "Mask R-CNN (no cascade_stages) or a Cascade R-CNN (no mask_head)."
        )
    if "rcnn" in stages and model.config.cascade_stages is not None:
        loss_dict.update(
            cascade_roi_losses(model, features, proposals, [truth.boxes for truth in ground_truth],
                               [truth.classes for truth in ground_truth], sizes, settings, normalizer)
        )  # fmt: skip
    elif "rcnn" in stages:
        loss_dict.update(roi_losses(model, features, proposals, ground_truth, settings, normalizer))
    total = sum(loss_dict.values())
    return DetectionLosses(loss=total, loss_dict=loss_dict, proposals=list(proposals) if proposals else None)


def _flatten_levels(per_level: Sequence[torch.Tensor], image_index: int, channels: int) -> torch.Tensor:
    # (A * channels, H, W) -> (H * W * A, channels), the anchor layout of `AnchorGenerator.grid_anchors`.
    return torch.cat(
        [level[image_index].permute(1, 2, 0).reshape(-1, channels) for level in per_level], dim=0
    )


def rpn_losses(
    model: FasterRCNNForObjectDetection,
    objectness: Sequence[torch.Tensor],
    box_deltas: Sequence[torch.Tensor],
    anchors: Sequence[torch.Tensor],
    features: Sequence[torch.Tensor],
    image_sizes: Sequence[tuple[int, int]],
    ground_truth: Sequence[GroundTruth],
    settings: TrainingSettings,
    normalizer: Normalizer | None = None,
) -> dict[str, torch.Tensor]:
    """`loss_rpn_cls` and `loss_rpn_bbox` (mmdetection's `AnchorHead.loss_by_feat` for the RPN); the regression is
    L1, or smooth L1 with `beta=1/9` for a Cascade R-CNN, as mmdetection's configs have them."""
    assigner = MaxIoUAssigner(
        settings.rpn_pos_iou_threshold,
        settings.rpn_neg_iou_threshold,
        settings.rpn_min_pos_iou,
        settings.rpn_match_low_quality,
    )
    sampler = RandomSampler(settings.rpn_num_samples, settings.rpn_pos_fraction, add_gt_as_proposals=False)
    all_anchors = torch.cat(list(anchors), dim=0)
    feature_sizes = [tuple(feature.shape[-2:]) for feature in features]
    strides = model.rpn.anchor_generator.strides
    per_anchor = model.rpn.anchor_generator.num_anchors_per_location
    targets = []
    for image_size, truth in zip(image_sizes, ground_truth):
        valid = valid_anchor_mask(feature_sizes, strides, per_anchor, image_size, all_anchors.device)
        targets.append(anchor_targets(all_anchors, valid, truth.boxes, assigner, sampler, model.rpn.box_coder))
    avg_factor = sum(target.num_samples for target in targets)
    if normalizer is not None:
        avg_factor = normalizer(avg_factor)
    cascade = model.config.cascade_stages is not None
    regression_loss = partial(smooth_l1_loss, beta=CASCADE_RPN_SMOOTH_L1_BETA) if cascade else l1_loss
    logits = torch.cat([_flatten_levels(objectness, index, 1) for index in range(len(targets))]).view(-1)
    deltas = torch.cat([_flatten_levels(box_deltas, index, 4) for index in range(len(targets))])
    return {
        "loss_rpn_cls": sigmoid_cross_entropy(
            logits,
            torch.cat([target.objectness for target in targets]),
            torch.cat([target.objectness_weights for target in targets]),
            avg_factor,
        ),
        "loss_rpn_bbox": regression_loss(
            deltas,
            torch.cat([target.deltas for target in targets]),
            torch.cat([target.delta_weights for target in targets]),
            avg_factor,
        ),
    }


@torch.no_grad()
def training_proposals(
    model: FasterRCNNForObjectDetection,
    objectness: Sequence[torch.Tensor],
    box_deltas: Sequence[torch.Tensor],
    anchors: Sequence[torch.Tensor],
    image_sizes: Sequence[tuple[int, int]],
    settings: TrainingSettings,
) -> list[torch.Tensor]:
    """Proposals for the second stage with the train-time settings (`train_cfg.rpn_proposal`), detached."""
    return [
        model.rpn.propose(
            [level[index].detach() for level in objectness],
            [level[index].detach() for level in box_deltas],
            anchors,
            image_size,
            nms_pre=settings.rpn_proposal_nms_pre,
            max_per_img=settings.rpn_proposal_max_per_img,
        ).boxes
        for index, image_size in enumerate(image_sizes)
    ]


def roi_losses(
    model: FasterRCNNForObjectDetection,
    features: Sequence[torch.Tensor],
    proposals: Sequence[torch.Tensor],
    ground_truth: Sequence[GroundTruth],
    settings: TrainingSettings,
    normalizer: Normalizer | None = None,
) -> dict[str, torch.Tensor]:
    """`loss_cls` and `loss_bbox` (mmdetection's `StandardRoIHead.loss` with `BBoxHead.loss`), and for a Mask
    R-CNN `loss_mask` on the same sampled positives (`FCNMaskHead.loss_and_target`, see `mask_loss`)."""
    roi_heads = model.roi_heads
    assigner = MaxIoUAssigner(
        settings.rcnn_pos_iou_threshold,
        settings.rcnn_neg_iou_threshold,
        settings.rcnn_min_pos_iou,
        settings.rcnn_match_low_quality,
    )
    sampled = sample_rois(proposals, [truth.boxes for truth in ground_truth], [truth.classes for truth in ground_truth],
                          assigner, settings)  # fmt: skip
    targets = [roi_targets(sample, roi_heads.num_classes, roi_heads.box_coder) for sample in sampled]
    rois = boxes_to_rois([target.rois for target in targets])
    class_logits, box_deltas = roi_heads.box_predictor(roi_heads.box_head(roi_heads.roi_align(features, rois)))
    loss_cls, loss_bbox = box_head_losses(class_logits, box_deltas, targets, roi_heads.num_classes,
                                          roi_heads.class_agnostic, l1_loss, normalizer)  # fmt: skip
    losses = {"loss_cls": loss_cls, "loss_bbox": loss_bbox}
    if roi_heads.predicts_masks:
        losses["loss_mask"] = mask_loss(roi_heads, features, sampled, [truth.masks for truth in ground_truth])
    return losses
