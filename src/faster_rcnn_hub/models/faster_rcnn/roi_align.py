"""RoI feature extraction: RoIAlign of each RoI on the pyramid level that fits its size.

At inference on a CPU the pooling is `roi_align_gather`: RoIAlign as one weighted gather of feature rows
(`embedding_bag`), for channels-last features. torchvision's CPU `roi_align` runs on one thread and reads NCHW, so
a channels-last pyramid is first copied to NCHW. Here every bilinear sample of every bin becomes four
`(row, weight)` pairs into the feature map viewed as a `(height * width, channels)` table (one contiguous row per
pixel in channels-last memory), and `embedding_bag` adds each bin's rows with their weights, on all threads,
without any copy of the map. The sample points, the bilinear weights and the border rules are computed as
torchvision's (and mmcv's) kernel computes them, in float32 and in the same order of operations; only the order in
which a bin's terms are added differs, which moves the result by float32 rounding (about 1e-7 relative).
Elsewhere (CUDA, training) it is torchvision's `roi_align`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from .fused_inference import FusedInferenceMixin


def boxes_to_rois(boxes_per_image: Sequence[torch.Tensor]) -> torch.Tensor:
    """`(K, 5)` RoIs: the image index in the batch, then x1, y1, x2, y2."""
    rois = [
        torch.cat([boxes.new_full((boxes.size(0), 1), image_index), boxes[:, :4]], dim=-1)
        for image_index, boxes in enumerate(boxes_per_image)
    ]
    return torch.cat(rois, dim=0)


class MultiLevelRoIAlign(FusedInferenceMixin, nn.Module):
    """RoIAlign of each RoI on the pyramid level that matches its size (mmdetection's `SingleRoIExtractor`).

    A RoI of scale `sqrt(w * h)` goes to level `floor(log2(scale / finest_scale + 1e-6))`, clamped to the
    available levels. At inference on a CPU the pooling is `roi_align_gather` (multi-threaded, reads the
    channels-last pyramid as it is); otherwise torchvision's `roi_align`.
    """

    def __init__(self, featmap_strides: Sequence[int], output_size: int, sampling_ratio: int, aligned: bool,
                 finest_scale: float) -> None:
        super().__init__()
        self.spatial_scales = [1.0 / stride for stride in featmap_strides]
        self.output_size = (output_size, output_size)
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.finest_scale = finest_scale

    @property
    def num_levels(self) -> int:
        return len(self.spatial_scales)

    def map_levels(self, rois: torch.Tensor) -> torch.Tensor:
        scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
        levels = torch.floor(torch.log2(scale / self.finest_scale + 1e-6))
        return levels.clamp(min=0, max=self.num_levels - 1).long()

    def forward(self, features: Sequence[torch.Tensor], rois: torch.Tensor) -> torch.Tensor:
        features = features[: self.num_levels]
        # Pooling runs in float32 whatever the network's dtype: RoI coordinates need float32's precision.
        rois = rois.float()
        pooled = rois.new_zeros(rois.size(0), features[0].size(1), *self.output_size)
        if rois.size(0) == 0:
            return pooled
        if self.num_levels == 1:
            return self._align(features[0], rois, 0)
        levels = self.map_levels(rois)
        for level, feature in enumerate(features):
            indices = (levels == level).nonzero(as_tuple=False).squeeze(1)
            if indices.numel() > 0:
                pooled[indices] = self._align(feature, rois[indices], level)
        return pooled

    def _align(self, feature: torch.Tensor, rois: torch.Tensor, level: int) -> torch.Tensor:
        feature = feature.float()
        if feature.device.type == "cpu" and self.runs_fused(feature):
            return roi_align_gather(
                feature, rois, self.output_size, self.spatial_scales[level], self.sampling_ratio, self.aligned
            )
        return roi_align(
            feature,
            rois,
            output_size=self.output_size,
            spatial_scale=self.spatial_scales[level],
            sampling_ratio=self.sampling_ratio,
            aligned=self.aligned,
        )


def roi_align_gather(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """RoIAlign of `rois` on `features`, as `torchvision.ops.roi_align` with the same arguments.

    Args:
        features: `(batch, channels, height, width)` float32 map, best channels-last (otherwise it is copied).
        rois: `(K, 5)` RoIs: batch index, then x1, y1, x2, y2 in input pixels.
        output_size: `(pooled_height, pooled_width)`.
        spatial_scale: Feature pixels per input pixel.
        sampling_ratio: Samples per bin side; `<= 0` means `ceil(roi side / pooled side)` per RoI.
        aligned: Shift the box by half a pixel (mmdetection's `aligned=True`).

    Returns:
        `(K, channels, pooled_height, pooled_width)`.
    """
    batch, channels, height, width = features.shape
    pooled_height, pooled_width = output_size
    bins_per_roi = pooled_height * pooled_width
    num_rois = rois.size(0)
    if num_rois == 0:
        return features.new_zeros((0, channels, pooled_height, pooled_width))
    rois = rois.to(torch.float32)
    offset = 0.5 if aligned else 0.0
    start_w = rois[:, 1] * spatial_scale - offset
    start_h = rois[:, 2] * spatial_scale - offset
    roi_width = rois[:, 3] * spatial_scale - offset - start_w
    roi_height = rois[:, 4] * spatial_scale - offset - start_h
    if not aligned:
        roi_width = roi_width.clamp(min=1.0)
        roi_height = roi_height.clamp(min=1.0)
    bin_height = roi_height / pooled_height
    bin_width = roi_width / pooled_width
    if sampling_ratio > 0:
        grid_height = torch.full_like(start_h, sampling_ratio, dtype=torch.long)
        grid_width = grid_height
    else:
        grid_height = torch.ceil(roi_height / pooled_height).long()
        grid_width = torch.ceil(roi_width / pooled_width).long()
    samples_per_bin = grid_height * grid_width

    # One entry per (RoI, bin, sample), RoI-major, then bin (row-major), then sample (row-major).
    samples_per_roi = samples_per_bin * bins_per_roi
    roi_of_sample = torch.repeat_interleave(torch.arange(num_rois, device=rois.device), samples_per_roi)
    first_of_roi = torch.cumsum(samples_per_roi, 0) - samples_per_roi
    local = torch.arange(roi_of_sample.numel(), device=rois.device) - first_of_roi[roi_of_sample]
    per_bin = samples_per_bin[roi_of_sample]
    grid_w = grid_width[roi_of_sample]
    bin_index = torch.div(local, per_bin, rounding_mode="floor")
    within_bin = local - bin_index * per_bin
    sample_y = torch.div(within_bin, grid_w, rounding_mode="floor")
    sample_x = within_bin - sample_y * grid_w
    bin_y = torch.div(bin_index, pooled_width, rounding_mode="floor")
    bin_x = bin_index - bin_y * pooled_width

    # torchvision: y = roi_start_h + ph * bin_size_h + (iy + .5f) * bin_size_h / roi_bin_grid_h
    step_h = bin_height[roi_of_sample]
    step_w = bin_width[roi_of_sample]
    y = start_h[roi_of_sample] + bin_y.float() * step_h + (sample_y.float() + 0.5) * step_h / grid_height[
        roi_of_sample
    ].float()
    x = start_w[roi_of_sample] + bin_x.float() * step_w + (sample_x.float() + 0.5) * step_w / grid_w.float()
    outside = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
    y = y.clamp(min=0)
    x = x.clamp(min=0)
    y_low, y_high, y = _neighbours(y, height)
    x_low, x_high, x = _neighbours(x, width)
    low_y_weight = y - y_low
    low_x_weight = x - x_low
    high_y_weight = 1.0 - low_y_weight
    high_x_weight = 1.0 - low_x_weight
    weights = torch.stack(
        [
            high_y_weight * high_x_weight,
            high_y_weight * low_x_weight,
            low_y_weight * high_x_weight,
            low_y_weight * low_x_weight,
        ],
        dim=1,
    ).masked_fill_(outside[:, None], 0.0)
    image_base = rois[:, 0].long()[roi_of_sample] * (height * width)
    rows = torch.stack(
        [y_low * width + x_low, y_low * width + x_high, y_high * width + x_low, y_high * width + x_high], dim=1
    ) + image_base[:, None]

    table = features.permute(0, 2, 3, 1).reshape(batch * height * width, channels)
    taps_per_bin = torch.repeat_interleave(samples_per_bin * 4, bins_per_roi)
    bag_offsets = torch.cumsum(taps_per_bin, 0) - taps_per_bin
    pooled = F.embedding_bag(
        rows.reshape(-1), table, bag_offsets, mode="sum", per_sample_weights=weights.reshape(-1).to(table.dtype)
    )
    # torchvision divides each bin's sum by its sample count (at least 1).
    counts = torch.repeat_interleave(samples_per_bin.clamp(min=1), bins_per_roi).to(pooled.dtype)
    pooled = pooled / counts[:, None]
    return pooled.view(num_rois, pooled_height, pooled_width, channels).permute(0, 3, 1, 2)


def _neighbours(coordinate: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(low, high, coordinate)` as torchvision's bilinear step: at or past the last pixel both neighbours are the
    last pixel and the coordinate snaps to it."""
    low = coordinate.long()
    at_edge = low >= size - 1
    low = torch.where(at_edge, size - 1, low)
    high = torch.where(at_edge, low, low + 1)
    coordinate = torch.where(at_edge, low.to(coordinate.dtype), coordinate)
    return low, high, coordinate


__all__ = ["MultiLevelRoIAlign", "boxes_to_rois", "roi_align_gather"]
