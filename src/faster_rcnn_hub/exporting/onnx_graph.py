"""The detector as one traceable function of tensors: what `torch.onnx.export` turns into a single ONNX graph.

`FasterRCNNForObjectDetection.forward` makes Python decisions on sizes (`tolist()`, `if` on counts, caches keyed by
feature sizes) that a trace would freeze at the example image. `ExportableDetector` runs the same modules (backbone,
FPN, RPN head, box head, box predictor) and the same box arithmetic (the model's `DeltaXYWHBoxCoder`), with every
size-dependent step written as tensor operations that export to standard ONNX operators: anchors from `Shape` and
`Range`, per-level `TopK`, `NonMaxSuppression`, `RoiAlign` (`half_pixel` from opset 16), `NonZero` and `ScatterND`.
One exported file then serves every image size.

It takes one image (batch 1); `batched_graph.py` takes several images of one padded size (images of different
padded sizes must each see only their own padding to get the detections they get alone, see `batching.py`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection._utils import _topk_min
from torchvision.ops import nms as torchvision_nms
from torchvision.ops import roi_align

from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection


class ExportableDetector(nn.Module):
    """`(pixel_values, image_size, rescale_factor) -> (boxes, scores, labels)` for one image.

    Args:
        model: An eval-mode model with a hard-NMS box head and its own RPN (see `check_exportable`).

    Inputs of `forward`:
        pixel_values: `(1, 3, H, W)` float32, normalized and zero-padded as the image processor makes them
            (cropped to the image's own padded size).
        image_size: `(2,)` int64, the resized image's `(height, width)` inside the padding.
        rescale_factor: `(2,)` float32, `(original_width / resized_width, original_height / resized_height)` as
            mmdetection computes them (`1 / (resized / original)` in double precision): boxes are multiplied by it.

    Outputs of `forward`: boxes `(N, 4)` float32 in original-image pixels, scores `(N,)` float32 by decreasing
    score, labels `(N,)` int64 (0-based class indices), `N <= config.rcnn_max_per_img`.
    """

    def __init__(self, model: FasterRCNNForObjectDetection) -> None:
        super().__init__()
        self.model = model
        config = model.config
        self.rpn = model.rpn
        self.roi_heads = model.roi_heads
        self.num_classes = config.num_classes
        # Base anchors are constants of the graph; only their shifts depend on the image size.
        for level, base in enumerate(self.rpn.anchor_generator.base_anchors()):
            self.register_buffer(f"base_anchors_{level}", base, persistent=False)

    def forward(
        self, pixel_values: torch.Tensor, image_size: torch.Tensor, rescale_factor: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pyramid = self.model.fpn(self.model.backbone(pixel_values))
        if isinstance(pyramid, torch.Tensor):
            pyramid = [pyramid]
        proposals = self.propose(pyramid, image_size)
        return self.detect(pyramid, proposals, image_size, rescale_factor)

    # ------------------------------------------------------------------ first stage
    def anchors(self, feature: torch.Tensor, level: int) -> torch.Tensor:
        """`(H * W * A, 4)` anchors of one level, as `AnchorGenerator.grid_anchors`, from the map's traced size."""
        stride = self.rpn.anchor_generator.strides[level]
        height, width = feature.shape[-2], feature.shape[-1]
        shift_x = torch.arange(0, width, dtype=torch.float32, device=feature.device) * stride
        shift_y = torch.arange(0, height, dtype=torch.float32, device=feature.device) * stride
        grid_y, grid_x = torch.meshgrid(shift_y, shift_x, indexing="ij")
        grid_x, grid_y = grid_x.reshape(-1), grid_y.reshape(-1)
        shifts = torch.stack([grid_x, grid_y, grid_x, grid_y], dim=-1)
        base = getattr(self, f"base_anchors_{level}")
        return (base[None, :, :] + shifts[:, None, :]).reshape(-1, 4)

    def propose(self, pyramid: list[torch.Tensor], image_size: torch.Tensor) -> torch.Tensor:
        """Proposal boxes in resized-image pixels: `RegionProposalNetwork.propose`, in tensor operations."""
        objectness, box_deltas = self.rpn.head(pyramid)
        level_scores, level_boxes, level_ids = [], [], []
        for level, (logits, deltas, feature) in enumerate(zip(objectness, box_deltas, pyramid)):
            scores = logits[0].permute(1, 2, 0).reshape(-1).sigmoid()
            deltas = deltas[0].permute(1, 2, 0).reshape(-1, 4)
            anchors = self.anchors(feature, level)
            if self.rpn.nms_pre > 0:
                # The model sorts and keeps `nms_pre`; TopK with k = min(nms_pre, count) is the same selection.
                scores, top = scores.topk(_topk_min(scores, self.rpn.nms_pre, 0), sorted=True)
                deltas, anchors = deltas[top], anchors[top]
            level_scores.append(scores)
            level_boxes.append(self.rpn.box_coder.decode(anchors, deltas))
            level_ids.append(torch.full_like(scores, level, dtype=torch.int64))
        scores = torch.cat(level_scores)
        ids = torch.cat(level_ids)
        boxes = clip_to_image(torch.cat(level_boxes), image_size)
        if self.rpn.min_bbox_size >= 0:
            widths = boxes[:, 2] - boxes[:, 0]
            heights = boxes[:, 3] - boxes[:, 1]
            valid = torch.where((widths > self.rpn.min_bbox_size) & (heights > self.rpn.min_bbox_size))[0]
            boxes, scores, ids = boxes[valid], scores[valid], ids[valid]
        keep = grouped_nms(boxes, scores, ids, self.rpn.nms_iou_threshold)
        return boxes[keep[: self.rpn.max_per_img]]

    # ------------------------------------------------------------------ second stage
    def pool(self, pyramid: list[torch.Tensor], proposals: torch.Tensor) -> torch.Tensor:
        """Multi-level RoIAlign (`MultiLevelRoIAlign` with torchvision's kernel), levels merged by scatter."""
        return self.pool_rois(pyramid, torch.cat([torch.zeros_like(proposals[:, :1]), proposals], dim=1))

    def pool_rois(self, pyramid: list[torch.Tensor], rois: torch.Tensor) -> torch.Tensor:
        """`pool` of `(R, 5)` RoIs: each row's image index in the batch, then its box."""
        extractor = self.roi_heads.roi_align
        pyramid = pyramid[: extractor.num_levels]
        if extractor.num_levels == 1:
            return self._align(pyramid[0], rois, 0)
        levels = extractor.map_levels(rois)
        pooled = rois.new_zeros((rois.size(0), pyramid[0].size(1), *extractor.output_size))
        for level, feature in enumerate(pyramid):
            indices = torch.where(levels == level)[0]
            pooled = pooled.index_put((indices,), self._align(feature, rois[indices], level))
        return pooled

    def _align(self, feature: torch.Tensor, rois: torch.Tensor, level: int) -> torch.Tensor:
        extractor = self.roi_heads.roi_align
        return roi_align(
            feature,
            rois,
            output_size=extractor.output_size,
            spatial_scale=extractor.spatial_scales[level],
            sampling_ratio=extractor.sampling_ratio,
            aligned=extractor.aligned,
        )

    def classify(
        self, pyramid: list[torch.Tensor], rois: torch.Tensor, clip_sizes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The second stage on `(R, 5)` RoIs: `(rois, class_logits, box_deltas)`, the deltas applying to the
        returned RoIs.

        A single box head classifies the RoIs it is given. A Cascade R-CNN (`CascadeRoIHeads.run_stages`) runs its
        stages in sequence, each refining the RoIs the next one pools (decoded with the stage's own coder, clipped
        to `clip_sizes`: `(2,)` or one `(height, width)` per RoI); it returns the last stage's RoIs and deltas
        and the mean of every stage's logits, summed in stage order as mmdetection sums them.
        """
        heads = self.roi_heads
        stages = getattr(heads, "stages", None)
        if stages is None:
            class_logits, box_deltas = heads.box_predictor(heads.box_head(self.pool_rois(pyramid, rois)))
            return rois, class_logits, box_deltas
        total_logits = None
        previous = None
        for stage in stages:
            if previous is not None:
                refined = clip_to_sizes(previous.box_coder.decode(rois[:, 1:], box_deltas), clip_sizes)
                rois = torch.cat([rois[:, :1], refined], dim=1)
            class_logits, box_deltas = stage.box_predictor(stage.box_head(self.pool_rois(pyramid, rois)))
            total_logits = class_logits if total_logits is None else total_logits + class_logits
            previous = stage
        return rois, total_logits / float(len(stages)), box_deltas

    def detect(
        self,
        pyramid: list[torch.Tensor],
        proposals: torch.Tensor,
        image_size: torch.Tensor,
        rescale_factor: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`RoIHeads.detect` and its multi-class NMS, in tensor operations."""
        heads = self.roi_heads
        rois = torch.cat([torch.zeros_like(proposals[:, :1]), proposals], dim=1)
        rois, class_logits, box_deltas = self.classify(pyramid, rois, image_size)
        proposals = rois[:, 1:]
        scores = F.softmax(class_logits, dim=-1)[:, :-1]
        boxes_per_roi = 1 if heads.class_agnostic else self.num_classes
        references = proposals.repeat_interleave(boxes_per_roi, dim=0)
        boxes = heads.box_coder.decode(references, box_deltas.reshape(-1, 4))
        boxes = clip_to_image(boxes, image_size) * rescale_factor.repeat(2)[None, :]
        boxes = boxes.reshape(-1, boxes_per_roi, 4).expand(-1, self.num_classes, 4).reshape(-1, 4)
        labels = torch.arange(self.num_classes, device=scores.device).view(1, -1).expand_as(scores).reshape(-1)
        scores = scores.reshape(-1)
        candidates = torch.where(scores > heads.score_threshold)[0]
        boxes, scores, labels = boxes[candidates], scores[candidates], labels[candidates]
        keep = grouped_nms(boxes, scores, labels, heads.nms_iou_threshold)[: heads.max_per_img]
        return boxes[keep], scores[keep], labels[keep]


def clip_to_image(boxes: torch.Tensor, image_size: torch.Tensor) -> torch.Tensor:
    """`clip_boxes`: x into `[0, width]`, y into `[0, height]`, with the size a graph input."""
    height = image_size[0].to(boxes.dtype)
    width = image_size[1].to(boxes.dtype)
    zero = torch.zeros((), dtype=boxes.dtype, device=boxes.device)
    x1 = torch.minimum(torch.maximum(boxes[:, 0], zero), width)
    y1 = torch.minimum(torch.maximum(boxes[:, 1], zero), height)
    x2 = torch.minimum(torch.maximum(boxes[:, 2], zero), width)
    y2 = torch.minimum(torch.maximum(boxes[:, 3], zero), height)
    return torch.stack([x1, y1, x2, y2], dim=1)


def clip_to_sizes(boxes: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """`clip_to_image` with one `(height, width)` per row: `boxes (..., 4)` and `sizes (..., 2)` broadcast."""
    height = sizes[..., 0].to(boxes.dtype)
    width = sizes[..., 1].to(boxes.dtype)
    zero = torch.zeros((), dtype=boxes.dtype, device=boxes.device)
    x1 = torch.minimum(torch.maximum(boxes[..., 0], zero), width)
    y1 = torch.minimum(torch.maximum(boxes[..., 1], zero), height)
    x2 = torch.minimum(torch.maximum(boxes[..., 2], zero), width)
    y2 = torch.minimum(torch.maximum(boxes[..., 3], zero), height)
    return torch.stack([x1, y1, x2, y2], dim=-1)


def grouped_nms(
    boxes: torch.Tensor, scores: torch.Tensor, group_ids: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """mmcv's `batched_nms` (see `nms.py`) as graph operations: indices kept, by decreasing score.

    The boxes are clipped, so non-negative: the largest coordinate is taken over the boxes and a zero, which is
    the same value and also defined when no box is left (`ReduceMax` of nothing is not).
    """
    zero = torch.zeros(1, dtype=boxes.dtype, device=boxes.device)
    max_coordinate = torch.cat([boxes.reshape(-1), zero]).max()
    offsets = group_ids.to(boxes.dtype) * (max_coordinate + 1)
    # Ranking first, as `nms.nms` does, makes equal scores keep mmcv's order in any NMS kernel.
    ranked_scores, order = scores.topk(_topk_min(scores, 2**31 - 1, 0), sorted=True)
    # The threshold rounded to float32 first, as mmcv's kernel compares (see `nms.py`).
    threshold = float(torch.tensor(iou_threshold, dtype=torch.float32))
    kept_ranks = torchvision_nms(boxes[order] + offsets[order][:, None], ranked_scores, threshold)
    return order[kept_ranks]


__all__ = ["ExportableDetector", "clip_to_image", "clip_to_sizes", "grouped_nms"]
