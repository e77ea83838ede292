"""Cascade R-CNN's second stage: box stages in sequence, each refining the boxes the next one pools.

At test time this is mmdetection's `CascadeRoIHead.predict_bbox`: stage `s` pools the RoIs, classifies them and
regresses one class-agnostic box per RoI, which becomes the RoI of stage `s + 1` (`regress_by_class`: a decode with
the stage's own coder stds, clipped to the image, with no re-sorting and no filtering). The detections then come
from the last stage's deltas on its own RoIs and the mean of every stage's raw class logits, through the same
softmax, score threshold and per-class NMS as a single-stage head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .boxes import DeltaXYWHBoxCoder
from .configuration_faster_rcnn import FasterRCNNConfig
from .mask_head import FCNMaskHead, build_mask_roi_align, mask_logits_of_boxes, select_class_maps
from .roi_align import boxes_to_rois
from .roi_heads import BoxHead, BoxPredictor, Detections, RoIHeads, fc_box_head_in_features


@dataclass
class CascadeStageOutput:
    """What one cascade stage computed, per image (all in resized-image pixels, float32).

    Attributes:
        rois: The `(N_i, 4)` boxes the stage pooled.
        class_logits: `(N_i, num_classes + 1)` raw class logits; the last column is background.
        box_deltas: `(N_i, 4)` class-agnostic box deltas.
        boxes: `(N_i, 4)` the RoIs refined by the deltas and clipped to the image: the next stage's RoIs.
    """

    rois: list[torch.Tensor]
    class_logits: list[torch.Tensor]
    box_deltas: list[torch.Tensor]
    boxes: list[torch.Tensor]


class CascadeStage(nn.Module):
    """One stage: its own fully connected box head, class-agnostic predictor and box coder, and with
    `config.mask_head` (Cascade Mask R-CNN) its own mask head."""

    def __init__(self, config: FasterRCNNConfig, box_coder_stds: Sequence[float]) -> None:
        super().__init__()
        self.box_head = BoxHead(fc_box_head_in_features(config), config.box_head_fc_channels, config.box_head_num_fcs)
        self.box_predictor = BoxPredictor(self.box_head.out_features, config.num_classes, class_agnostic=True)
        self.box_coder = DeltaXYWHBoxCoder(config.box_coder_means, box_coder_stds)
        if config.mask_head is not None:
            self.mask_head = FCNMaskHead(config.feature_channels, config.num_classes, config.mask_head)


class CascadeRoIHeads(RoIHeads):
    """The RoI head of a Cascade R-CNN (`config.cascade_stages`), with `RoIHeads`' test-time detection step.

    Args:
        config: RoIAlign, box-head, cascade-stage and test-time detection settings.
    """

    def __init__(self, config: FasterRCNNConfig) -> None:
        super().__init__(config)
        # The detections decode the last stage's deltas, with the last stage's stds.
        self.box_coder = self.stages[-1].box_coder

    def build_box_branch(self, config: FasterRCNNConfig) -> None:
        self.stages = nn.ModuleList(CascadeStage(config, stage["box_coder_stds"]) for stage in config.cascade_stages)

    def build_mask_branch(self, config: FasterRCNNConfig) -> None:
        # One mask RoI extractor for all stages (it has no weights); the mask heads live in the stages.
        self.mask_size = config.mask_size
        self.mask_roi_align = build_mask_roi_align(config) if config.mask_head is not None else None
        self.mask_head = None

    def add_masks(self, features: Sequence[torch.Tensor], detections: list[Detections]) -> list[Detections]:
        """mmdetection's `CascadeRoIHead.predict_mask`: every stage's mask head runs on the final (last-stage)
        detection boxes, and each detection's mask probabilities are the mean of the stages' sigmoids, of its own
        class. `mask_logits` stays `None`: the mean of sigmoids is no single logit map's sigmoid."""
        boxes = [detection.resized_boxes for detection in detections]
        labels = [detection.labels for detection in detections]
        if sum(image_boxes.size(0) for image_boxes in boxes) == 0:
            probabilities = [
                features[0].new_zeros((0, self.mask_size, self.mask_size), dtype=torch.float32) for _ in boxes
            ]
        else:
            per_stage = [
                mask_logits_of_boxes(self.mask_roi_align, stage.mask_head, features, boxes).sigmoid()
                for stage in self.stages
            ]
            # mmdetection's `merge_aug_masks`: stacked, then the mean over the stages.
            mean = torch.stack(per_stage).mean(dim=0)
            probabilities = select_class_maps(mean, labels, self.stages[-1].mask_head.class_agnostic)
        for detection, image_probabilities in zip(detections, probabilities):
            detection.mask_probabilities = image_probabilities
            detection.mask_logits = None
        return detections

    def run_stages(
        self, features: Sequence[torch.Tensor], proposals: Sequence[torch.Tensor], image_sizes: torch.Tensor
    ) -> list[CascadeStageOutput]:
        """Every stage's RoIs, logits, deltas and refined boxes, for `proposals` (per image, `(N_i, 4)` boxes in
        resized-image pixels; `image_sizes`: `(batch, 2)` resized, unpadded `(height, width)`, the clip bounds)."""
        counts = [boxes.size(0) for boxes in proposals]
        sizes = [tuple(size) for size in image_sizes.tolist()]
        boxes = [image_boxes.float() for image_boxes in proposals]
        outputs = []
        for stage in self.stages:
            pooled = self.roi_align(features, boxes_to_rois(boxes)).to(stage.box_predictor.cls_score.weight.dtype)
            class_logits, box_deltas = stage.box_predictor(stage.box_head(pooled))
            class_logits, box_deltas = class_logits.float().split(counts), box_deltas.float().split(counts)
            refined = [
                stage.box_coder.decode(rois, deltas, max_shape=size)
                for rois, deltas, size in zip(boxes, box_deltas, sizes)
            ]
            outputs.append(CascadeStageOutput(boxes, list(class_logits), list(box_deltas), refined))
            boxes = refined
        return outputs

    def forward(
        self,
        features: Sequence[torch.Tensor],
        proposals: Sequence[torch.Tensor],
        image_sizes: torch.Tensor,
        original_sizes: torch.Tensor,
    ) -> list[Detections]:
        """Detections for each image; the arguments are `RoIHeads.forward`'s."""
        if sum(boxes.size(0) for boxes in proposals) == 0:
            empty = [self._empty(features[0]) for _ in proposals]
            return self.add_masks(features, empty) if self.predicts_masks else empty
        stages = self.run_stages(features, proposals, image_sizes)
        last = stages[-1]
        resized = image_sizes.tolist()
        original = original_sizes.tolist()
        detections = []
        for index in range(len(proposals)):
            # mmdetection sums the stages' logits in order and divides by the stage count.
            mean_logits = sum(stage.class_logits[index] for stage in stages) / float(len(stages))
            detections.append(
                self.detect(
                    last.rois[index],
                    mean_logits,
                    last.box_deltas[index],
                    tuple(resized[index]),
                    tuple(original[index]),
                )
            )
        return self.add_masks(features, detections) if self.predicts_masks else detections


__all__ = ["CascadeRoIHeads", "CascadeStage", "CascadeStageOutput"]
