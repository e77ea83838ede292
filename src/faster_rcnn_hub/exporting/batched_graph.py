"""The detector as one traceable function of a batch of images of ONE padded size: `--batch dynamic|N` exports.

An image's detections depend on how much zero padding follows it (see `batching.py`), so a batch shares a
forward pass only when its images have the same padded size: the runtime groups images by padded size before
running this graph, as the PyTorch model does. Inside one padded size, each image still has its own resized size
(anchors are clipped to it) and rescale factor, its own per-level top-k, its own proposal and detection NMS (ONNX
NonMaxSuppression's batch dimension, `batched_nms.py`) and its own `max_per_img`; the outputs are every kept
detection of the batch with the index of its image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection._utils import _topk_min

from .batched_nms import ABSENT_SCORE, batch_grouped_nms, first_per_image
from .onnx_graph import ExportableDetector, clip_to_sizes


class BatchedExportableDetector(ExportableDetector):
    """`(pixel_values, image_size, rescale_factor) -> (boxes, scores, labels, batch_index)` for a batch.

    Inputs of `forward`:
        pixel_values: `(B, 3, H, W)` float32, normalized and zero-padded, all of one padded size `(H, W)`.
        image_size: `(B, 2)` int64, each resized image's `(height, width)` inside the padding.
        rescale_factor: `(B, 2)` float32, each image's `(original / resized)` factors, `(width, height)`.

    Outputs of `forward`: boxes `(N, 4)` float32 in original-image pixels, scores `(N,)`, labels `(N,)` int64 and
    batch_index `(N,)` int64 (the image of each detection): grouped by image, by decreasing score within an image,
    at most `config.rcnn_max_per_img` per image.
    """

    def forward(
        self, pixel_values: torch.Tensor, image_size: torch.Tensor, rescale_factor: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        pyramid = self.model.fpn(self.model.backbone(pixel_values))
        if isinstance(pyramid, torch.Tensor):
            pyramid = [pyramid]
        rois = self.propose_batch(pyramid, image_size)
        return self.detect_batch(pyramid, rois, image_size, rescale_factor)

    def propose_batch(self, pyramid: list[torch.Tensor], image_size: torch.Tensor) -> torch.Tensor:
        """`(R, 5)` proposals of the batch: image index, then the box in resized-image pixels, grouped by image."""
        objectness, box_deltas = self.rpn.head(pyramid)
        batch = pyramid[0].shape[0]
        level_scores, level_boxes, level_ids = [], [], []
        for level, (logits, deltas, feature) in enumerate(zip(objectness, box_deltas, pyramid)):
            scores = logits.permute(0, 2, 3, 1).reshape(batch, -1).sigmoid()
            deltas = deltas.permute(0, 2, 3, 1).reshape(batch, -1, 4)
            anchors = self.anchors(feature, level)[None].expand(batch, -1, 4)
            if self.rpn.nms_pre > 0:
                # Every image of the batch has the same map sizes, so the same count to keep.
                scores, top = scores.topk(_topk_min(scores, self.rpn.nms_pre, 1), dim=1, sorted=True)
                deltas = deltas.gather(1, top[:, :, None].expand(-1, -1, 4))
                anchors = anchors.gather(1, top[:, :, None].expand(-1, -1, 4))
            decoded = self.rpn.box_coder.decode(anchors.reshape(-1, 4), deltas.reshape(-1, 4))
            level_scores.append(scores)
            level_boxes.append(decoded.reshape(batch, -1, 4))
            level_ids.append(torch.full_like(scores, level, dtype=torch.int64))
        scores = torch.cat(level_scores, dim=1)
        ids = torch.cat(level_ids, dim=1)
        boxes = clip_to_sizes(torch.cat(level_boxes, dim=1), image_size[:, None, :])
        if self.rpn.min_bbox_size >= 0:
            widths = boxes[..., 2] - boxes[..., 0]
            heights = boxes[..., 3] - boxes[..., 1]
            valid = (widths > self.rpn.min_bbox_size) & (heights > self.rpn.min_bbox_size)
            scores = torch.where(valid, scores, torch.full_like(scores, ABSENT_SCORE))
        kept = batch_grouped_nms(boxes, scores, ids, self.rpn.nms_iou_threshold)
        kept = kept[first_per_image(kept[:, 0], batch, self.rpn.max_per_img)]
        images, indices = kept[:, 0], kept[:, 1]
        return torch.cat([images.to(boxes.dtype)[:, None], boxes[images, indices]], dim=1)

    def detect_batch(
        self,
        pyramid: list[torch.Tensor],
        rois: torch.Tensor,
        image_size: torch.Tensor,
        rescale_factor: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """`ExportableDetector.detect` for the RoIs of a batch, each image's NMS and `max_per_img` its own."""
        heads = self.roi_heads
        batch = pyramid[0].shape[0]
        roi_images = rois[:, 0].to(torch.int64)
        rois, class_logits, box_deltas = self.classify(pyramid, rois, image_size[roi_images])
        scores = F.softmax(class_logits, dim=-1)[:, :-1]
        boxes_per_roi = 1 if heads.class_agnostic else self.num_classes
        references = rois[:, 1:].repeat_interleave(boxes_per_roi, dim=0)
        boxes = heads.box_coder.decode(references, box_deltas.reshape(-1, 4)).reshape(-1, boxes_per_roi, 4)
        boxes = clip_to_sizes(boxes, image_size[roi_images][:, None, :])
        boxes = boxes * rescale_factor[roi_images].repeat(1, 2)[:, None, :]
        boxes = boxes.expand(-1, self.num_classes, 4).reshape(-1, 4)
        labels = torch.arange(self.num_classes, device=scores.device).view(1, -1).expand_as(scores).reshape(-1)
        images = roi_images[:, None].expand_as(scores).reshape(-1)
        scores = scores.reshape(-1)
        candidates = torch.where(scores > heads.score_threshold)[0]
        boxes, scores, labels, images = boxes[candidates], scores[candidates], labels[candidates], images[candidates]
        # One row per image over all candidates: an image's own candidates keep their scores, the rest are absent.
        own = images[None, :] == torch.arange(batch, device=images.device)[:, None]
        padded_scores = torch.where(own, scores[None, :], torch.full_like(scores, ABSENT_SCORE)[None, :])
        padded_boxes = boxes[None].expand(batch, -1, 4)
        kept = batch_grouped_nms(padded_boxes, padded_scores, labels[None].expand(batch, -1), heads.nms_iou_threshold)
        kept = kept[first_per_image(kept[:, 0], batch, heads.max_per_img)][:, 1]
        return boxes[kept], scores[kept], labels[kept], images[kept]


__all__ = ["BatchedExportableDetector"]
