"""Mask R-CNN's mask branch: each detection's box pooled again (RoIAlign 14x14), then mmdetection's `FCNMaskHead`.

mmdetection predicts masks on the final detection boxes in resized-image pixels (its box step runs with
`rescale=False` whenever a mask head exists), pools them from the same pyramid levels as the box head, and takes
each detection's own class's 28x28 logit map; the pasting into the image is `mask_pasting.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_faster_rcnn import FasterRCNNConfig
from .roi_align import MultiLevelRoIAlign, boxes_to_rois


class FCNMaskHead(nn.Module):
    """`num_convs` 3x3 convolutions with ReLU, a stride-`upsample_ratio` deconvolution with ReLU, and a 1x1
    convolution to one logit map per class (mmdetection's `FCNMaskHead` with its defaults).

    Args:
        in_channels: Channels of the pooled features (the FPN's).
        num_classes: Object classes; the logits have one map per class, or one in all when `class_agnostic`.
        mask_head: `config.mask_head` (see `FasterRCNNConfig`).
    """

    def __init__(self, in_channels: int, num_classes: int, mask_head: dict) -> None:
        super().__init__()
        channels = mask_head["conv_channels"]
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels if index == 0 else channels, channels, 3, padding=1)
            for index in range(mask_head["num_convs"])
        )
        upsample_in = channels if mask_head["num_convs"] > 0 else in_channels
        ratio = mask_head["upsample_ratio"]
        self.upsample = nn.ConvTranspose2d(upsample_in, channels, ratio, stride=ratio)
        self.class_agnostic = mask_head["class_agnostic"]
        self.conv_logits = nn.Conv2d(channels, 1 if self.class_agnostic else num_classes, 1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """`(N, num_classes or 1, mask_size, mask_size)` mask logits from `(N, in_channels, size, size)` features."""
        hidden = pooled
        for conv in self.convs:
            hidden = F.relu(conv(hidden))
        return self.conv_logits(F.relu(self.upsample(hidden)))


def build_mask_roi_align(config: FasterRCNNConfig) -> MultiLevelRoIAlign:
    """mmdetection's `mask_roi_extractor`: RoIAlign with the mask head's settings, on the levels the box head pools
    from, chosen by the same box scale rule."""
    settings = config.mask_head
    return MultiLevelRoIAlign(
        config.roi_featmap_strides,
        settings["roi_output_size"],
        settings["roi_sampling_ratio"],
        settings["roi_aligned"],
        config.roi_finest_scale,
    )


def mask_logits_of_boxes(
    roi_align: MultiLevelRoIAlign, head: FCNMaskHead, features: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor]
) -> torch.Tensor:
    """`(K, num_classes or 1, size, size)` float32 logits for the boxes of every image (`(N_i, 4)` each, in
    resized-image pixels), concatenated in image order."""
    pooled = roi_align(features, boxes_to_rois(boxes)).to(head.conv_logits.weight.dtype)
    return head(pooled).float()


def select_class_maps(logits: torch.Tensor, labels: Sequence[torch.Tensor], class_agnostic: bool) -> list[torch.Tensor]:
    """Split `(K, classes, size, size)` maps per image and keep each detection's own class's map."""
    counts = [image_labels.numel() for image_labels in labels]
    selected = []
    for image_logits, image_labels in zip(logits.split(counts), labels):
        channel = torch.zeros_like(image_labels) if class_agnostic else image_labels
        selected.append(image_logits[torch.arange(image_labels.numel(), device=logits.device), channel])
    return selected


__all__ = ["FCNMaskHead", "build_mask_roi_align", "mask_logits_of_boxes", "select_class_maps"]
