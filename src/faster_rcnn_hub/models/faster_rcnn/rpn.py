"""Region Proposal Network: a shared 3x3 head over the pyramid and mmdetection's test-time proposal step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .boxes import AnchorGenerator, DeltaXYWHBoxCoder
from .configuration_faster_rcnn import FasterRCNNConfig
from .fused_inference import FusedInferenceMixin, folded_conv
from .nms import batched_nms


@dataclass
class Proposals:
    """Proposals of one image, in resized-image pixels, ordered by decreasing objectness."""

    boxes: torch.Tensor
    scores: torch.Tensor


class RPNHead(FusedInferenceMixin, nn.Module):
    """3x3 convolution + ReLU, then one objectness logit and four box deltas per anchor and location."""

    def __init__(self, in_channels: int, feat_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, feat_channels, 3, padding=1)
        self.objectness = nn.Conv2d(feat_channels, num_anchors, 1)
        self.box_deltas = nn.Conv2d(feat_channels, num_anchors * 4, 1)

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        objectness, box_deltas = [], []
        fused = self.runs_fused(self.conv.weight, *features)
        for feature in features:
            if fused:
                hidden = folded_conv(self.conv)(feature, relu=True)
                objectness.append(folded_conv(self.objectness)(hidden))
                box_deltas.append(folded_conv(self.box_deltas)(hidden))
            else:
                hidden = F.relu(self.conv(feature))
                objectness.append(self.objectness(hidden))
                box_deltas.append(self.box_deltas(hidden))
        return objectness, box_deltas


class RegionProposalNetwork(nn.Module):
    """Scores every anchor, keeps the best per level, decodes, filters and suppresses overlaps.

    Args:
        config: Anchor layout, head widths and the test-time proposal settings (`rpn_*`).
    """

    def __init__(self, config: FasterRCNNConfig) -> None:
        super().__init__()
        self.anchor_generator = AnchorGenerator(config.anchor_strides, config.anchor_scales, config.anchor_ratios)
        self.head = RPNHead(
            config.feature_channels, config.rpn_feat_channels, self.anchor_generator.num_anchors_per_location
        )
        self.box_coder = DeltaXYWHBoxCoder(config.rpn_box_coder_means, config.rpn_box_coder_stds)
        self.nms_pre = config.rpn_nms_pre
        self.nms_iou_threshold = config.rpn_nms_iou_threshold
        self.max_per_img = config.rpn_max_per_img
        self.min_bbox_size = config.rpn_min_bbox_size

    def forward(self, features: Sequence[torch.Tensor], image_sizes: torch.Tensor) -> list[Proposals]:
        """Proposals for each image of the batch.

        Args:
            features: Pyramid levels, each `(batch, channels, height, width)`.
            image_sizes: `(batch, 2)` resized, unpadded `(height, width)` of each image; boxes are clipped to it.
        """
        objectness, box_deltas = self.head(features)
        # A bfloat16/float16 network still ranks, decodes and suppresses in float32: half-precision box
        # coordinates are off by up to a few pixels at 1000 px.
        objectness = [level.float() for level in objectness]
        box_deltas = [level.float() for level in box_deltas]
        anchors = self.anchor_generator.grid_anchors(
            [feature.shape[-2:] for feature in features], device=features[0].device, dtype=torch.float32
        )
        sizes = image_sizes.tolist()
        return [
            self.propose(
                [level[image_index] for level in objectness],
                [level[image_index] for level in box_deltas],
                anchors,
                (int(sizes[image_index][0]), int(sizes[image_index][1])),
            )
            for image_index in range(len(sizes))
        ]

    def propose(
        self,
        objectness: Sequence[torch.Tensor],
        box_deltas: Sequence[torch.Tensor],
        anchors: Sequence[torch.Tensor],
        image_size: tuple[int, int],
        nms_pre: int | None = None,
        max_per_img: int | None = None,
    ) -> Proposals:
        """The proposal step of one image (mmdetection's `RPNHead._predict_by_feat_single`).

        `nms_pre` and `max_per_img` override the test-time settings (training uses `train_cfg`'s).
        """
        nms_pre = self.nms_pre if nms_pre is None else nms_pre
        max_per_img = self.max_per_img if max_per_img is None else max_per_img
        level_scores, level_deltas, level_anchors, level_ids = [], [], [], []
        for level_index, (logits, deltas, level_anchor) in enumerate(zip(objectness, box_deltas, anchors)):
            # (A, H, W) -> (H * W * A), the anchor layout of `AnchorGenerator.grid_anchors`.
            scores = logits.permute(1, 2, 0).reshape(-1).sigmoid()
            deltas = deltas.permute(1, 2, 0).reshape(-1, 4)
            if 0 < nms_pre < scores.shape[0]:
                ranked_scores, ranked_indices = scores.sort(descending=True)
                top = ranked_indices[:nms_pre]
                scores = ranked_scores[:nms_pre]
                deltas = deltas[top, :]
                level_anchor = level_anchor[top]
            level_scores.append(scores)
            level_deltas.append(deltas)
            level_anchors.append(level_anchor)
            level_ids.append(scores.new_full((scores.size(0),), level_index, dtype=torch.long))

        scores = torch.cat(level_scores)
        ids = torch.cat(level_ids)
        boxes = self.box_coder.decode(torch.cat(level_anchors), torch.cat(level_deltas), max_shape=image_size)

        if self.min_bbox_size >= 0:
            widths = boxes[:, 2] - boxes[:, 0]
            heights = boxes[:, 3] - boxes[:, 1]
            valid = (widths > self.min_bbox_size) & (heights > self.min_bbox_size)
            if not bool(valid.all()):
                boxes, scores, ids = boxes[valid], scores[valid], ids[valid]

        keep, kept_scores = batched_nms(boxes, scores, ids, self.nms_iou_threshold)
        keep = keep[:max_per_img]
        return Proposals(boxes=boxes[keep], scores=kept_scores[:max_per_img])
