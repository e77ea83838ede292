"""Second stage: the box head on pooled RoI features, and mmdetection's test-time detection step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .boxes import DeltaXYWHBoxCoder
from .configuration_faster_rcnn import FasterRCNNConfig
from .mask_head import FCNMaskHead, build_mask_roi_align, mask_logits_of_boxes, select_class_maps
from .nms import batched_nms, batched_soft_nms
from .roi_align import MultiLevelRoIAlign, boxes_to_rois
from .shared_res5_head import SharedRes5Head


@dataclass
class Detections:
    """Final detections of one image: boxes in original-image pixels, scores, 0-based class labels; with a mask
    head also the boxes in resized-image pixels (the mask RoIs) and each detection's own class's mask
    probabilities, with the logits they are the sigmoid of (a Cascade Mask R-CNN averages probabilities, and has
    no logits to give)."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    resized_boxes: torch.Tensor | None = None
    mask_probabilities: torch.Tensor | None = None
    mask_logits: torch.Tensor | None = None


class BoxHead(nn.Module):
    """Shared fully connected layers (mmdetection's `Shared2FCBBoxHead` with two)."""

    def __init__(self, in_features: int, fc_channels: int, num_fcs: int) -> None:
        super().__init__()
        layers = []
        for index in range(num_fcs):
            layers.append(nn.Linear(in_features if index == 0 else fc_channels, fc_channels))
        self.fcs = nn.ModuleList(layers)
        self.out_features = fc_channels

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        hidden = pooled.flatten(1)
        for layer in self.fcs:
            hidden = F.relu(layer(hidden))
        return hidden


class BoxPredictor(nn.Module):
    """Class logits (the last index is background) and box deltas (per class, or one set)."""

    def __init__(self, in_features: int, num_classes: int, class_agnostic: bool) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes + 1)
        self.bbox_pred = nn.Linear(in_features, 4 if class_agnostic else 4 * num_classes)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_score(hidden), self.bbox_pred(hidden)


class RoIHeads(nn.Module):
    """Pools each proposal, classifies it, refines its box, and keeps the best per class.

    Args:
        config: RoIAlign, box-head and test-time detection settings (`roi_*`, `box_*`, `rcnn_*`).
    """

    def __init__(self, config: FasterRCNNConfig) -> None:
        super().__init__()
        self.roi_align = MultiLevelRoIAlign(
            config.roi_featmap_strides,
            config.roi_output_size,
            config.roi_sampling_ratio,
            config.roi_aligned,
            config.roi_finest_scale,
        )
        self.build_box_branch(config)
        self.build_mask_branch(config)
        self.box_coder = DeltaXYWHBoxCoder(config.box_coder_means, config.box_coder_stds)
        self.num_classes = config.num_classes
        self.class_agnostic = config.reg_class_agnostic
        self.score_threshold = config.rcnn_score_threshold
        self.nms_iou_threshold = config.rcnn_nms_iou_threshold
        self.max_per_img = config.rcnn_max_per_img
        # (boxes, scores, labels) -> (keep, kept_scores): per-class NMS, or soft-NMS, which also lowers scores.
        if config.rcnn_nms_type == "soft_nms":
            self.class_nms = partial(
                batched_soft_nms,
                iou_threshold=config.rcnn_nms_iou_threshold,
                sigma=config.rcnn_soft_nms_sigma,
                min_score=config.rcnn_soft_nms_min_score,
                method=config.rcnn_soft_nms_method,
                max_num=config.rcnn_max_per_img,
            )
        else:
            self.class_nms = partial(batched_nms, iou_threshold=config.rcnn_nms_iou_threshold)

    def build_box_branch(self, config: FasterRCNNConfig) -> None:
        """The layers between the pooled RoI features and the class logits and box deltas (`box_head`,
        `box_predictor`); a Cascade R-CNN builds one set per stage instead (`cascade_roi_heads.py`)."""
        if config.roi_head_type == "shared_res5":
            self.box_head = SharedRes5Head(config)
        else:
            in_features = fc_box_head_in_features(config)
            self.box_head = BoxHead(in_features, config.box_head_fc_channels, config.box_head_num_fcs)
        self.box_predictor = BoxPredictor(self.box_head.out_features, config.num_classes, config.reg_class_agnostic)

    def build_mask_branch(self, config: FasterRCNNConfig) -> None:
        """Mask R-CNN's mask RoI extractor and mask head (`mask_roi_align`, `mask_head`: `None` without
        `config.mask_head`). With a mask head, detections are found in resized-image pixels and only then
        divided by the scale factor, as mmdetection does, because the masks are pooled at the resized boxes."""
        self.mask_size = config.mask_size
        self.mask_roi_align = build_mask_roi_align(config) if config.mask_head is not None else None
        self.mask_head = (
            FCNMaskHead(config.feature_channels, config.num_classes, config.mask_head)
            if config.mask_head is not None
            else None
        )

    @property
    def predicts_masks(self) -> bool:
        return self.mask_roi_align is not None

    def add_masks(self, features: Sequence[torch.Tensor], detections: list[Detections]) -> list[Detections]:
        """Set each detection's `mask_logits` and `mask_probabilities` (their sigmoid): `(N_i, size, size)`, its own
        class's map at its resized box."""
        boxes = [detection.resized_boxes for detection in detections]
        labels = [detection.labels for detection in detections]
        if sum(image_boxes.size(0) for image_boxes in boxes) == 0:
            logits = [features[0].new_zeros((0, self.mask_size, self.mask_size), dtype=torch.float32) for _ in boxes]
        else:
            all_classes = mask_logits_of_boxes(self.mask_roi_align, self.mask_head, features, boxes)
            logits = select_class_maps(all_classes, labels, self.mask_head.class_agnostic)
        for detection, image_logits in zip(detections, logits):
            detection.mask_logits = image_logits
            detection.mask_probabilities = image_logits.sigmoid()
        return detections

    def forward(
        self,
        features: Sequence[torch.Tensor],
        proposals: Sequence[torch.Tensor],
        image_sizes: torch.Tensor,
        original_sizes: torch.Tensor,
    ) -> list[Detections]:
        """Detections for each image (with `mask_logits` when the model has a mask head).

        Args:
            features: Pyramid levels.
            proposals: Per image, `(N_i, 4)` proposal boxes in resized-image pixels.
            image_sizes: `(batch, 2)` resized, unpadded `(height, width)`; refined boxes are clipped to it.
            original_sizes: `(batch, 2)` `(height, width)` of the images before resizing; boxes are returned in
                these pixels.
        """
        rois = boxes_to_rois(proposals)
        if rois.size(0) == 0:
            return [self._empty(features[0]) for _ in proposals]
        pooled = self.roi_align(features, rois).to(self.box_predictor.cls_score.weight.dtype)
        class_logits, box_deltas = self.box_predictor(self.box_head(pooled))
        class_logits, box_deltas = class_logits.float(), box_deltas.float()
        counts = [boxes.size(0) for boxes in proposals]
        resized = image_sizes.tolist()
        original = original_sizes.tolist()
        detections = [
            self.detect(image_proposals, logits, deltas, tuple(resized[index]), tuple(original[index]))
            for index, (image_proposals, logits, deltas) in enumerate(
                zip(proposals, class_logits.split(counts), box_deltas.split(counts))
            )
        ]
        return self.add_masks(features, detections) if self.predicts_masks else detections

    def _empty(self, reference: torch.Tensor) -> Detections:
        empty = Detections(
            boxes=reference.new_zeros((0, 4), dtype=torch.float32),
            scores=reference.new_zeros((0,), dtype=torch.float32),
            labels=torch.zeros((0,), dtype=torch.long, device=reference.device),
        )
        if self.predicts_masks:
            empty.resized_boxes = empty.boxes
            empty.mask_probabilities = reference.new_zeros((0, self.mask_size, self.mask_size), dtype=torch.float32)
            empty.mask_logits = empty.mask_probabilities
        return empty

    def detect(
        self,
        proposals: torch.Tensor,
        class_logits: torch.Tensor,
        box_deltas: torch.Tensor,
        image_size: tuple[int, int],
        original_size: tuple[int, int],
    ) -> Detections:
        """mmdetection's `BBoxHead._predict_by_feat_single` with `rescale=True`, then `multiclass_nms`."""
        if proposals.size(0) == 0:
            return self._empty(class_logits)
        num_rois = proposals.size(0)
        scores = F.softmax(class_logits, dim=-1)
        boxes_per_roi = 1 if self.class_agnostic else self.num_classes
        references = proposals.repeat_interleave(boxes_per_roi, dim=0)
        boxes = self.box_coder.decode(references, box_deltas.reshape(-1, 4), max_shape=image_size)
        if self.predicts_masks:
            # mmdetection's `predict_bbox(rescale=False)` then `bboxes /= scale_factor` in the mask head: NMS on
            # resized-image boxes, whose survivors are the mask RoIs.
            detections = self._multiclass_nms(boxes.view(num_rois, -1), scores)
            detections.resized_boxes = detections.boxes
            scale_factors = detections.boxes.new_tensor(_scale_factors(image_size, original_size)).repeat(1, 2)
            detections.boxes = detections.boxes / scale_factors
            return detections
        boxes = boxes * boxes.new_tensor(_inverse_scale_factors(image_size, original_size)).repeat(1, 2)
        boxes = boxes.view(num_rois, -1)
        return self._multiclass_nms(boxes, scores)

    def _multiclass_nms(self, boxes: torch.Tensor, scores: torch.Tensor) -> Detections:
        num_rois = scores.size(0)
        if boxes.shape[1] > 4:
            boxes = boxes.view(num_rois, -1, 4)
        else:
            boxes = boxes[:, None].expand(num_rois, self.num_classes, 4)
        scores = scores[:, :-1]
        labels = torch.arange(self.num_classes, dtype=torch.long, device=scores.device)
        labels = labels.view(1, -1).expand_as(scores)
        boxes, scores, labels = boxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
        candidates = (scores > self.score_threshold).nonzero(as_tuple=False).squeeze(1)
        boxes, scores, labels = boxes[candidates], scores[candidates], labels[candidates]
        if boxes.numel() == 0:
            return Detections(boxes=boxes, scores=scores, labels=labels)
        keep, kept_scores = self.class_nms(boxes, scores, labels)
        keep = keep[: self.max_per_img]
        return Detections(boxes=boxes[keep], scores=kept_scores[: self.max_per_img], labels=labels[keep])


def fc_box_head_in_features(config: FasterRCNNConfig) -> int:
    """Inputs of the first fully connected layer: the flattened RoIAlign output."""
    return config.feature_channels * config.roi_output_size**2


def _scale_factors(image_size: tuple[int, int], original_size: tuple[int, int]) -> list[float]:
    """mmdetection's `scale_factor`: `[w_scale, h_scale]` with `w_scale = resized_width / original_width`."""
    resized_height, resized_width = image_size
    original_height, original_width = original_size
    return [resized_width / original_width, resized_height / original_height]


def _inverse_scale_factors(image_size: tuple[int, int], original_size: tuple[int, int]) -> list[float]:
    """`[1 / w_scale, 1 / h_scale]` with mmdetection's per-axis scale factors `resized / original`.

    Computed in Python floats exactly as mmdetection does (not as `original / resized`, which can differ in
    the last bit).
    """
    resized_height, resized_width = image_size
    original_height, original_width = original_size
    width_scale = resized_width / original_width
    height_scale = resized_height / original_height
    return [1 / width_scale, 1 / height_scale]
