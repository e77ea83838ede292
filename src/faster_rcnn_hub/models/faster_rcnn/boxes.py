"""Box arithmetic of both stages: the RPN's anchors and the (dx, dy, dw, dh) delta coder, in mmdetection's float order.

Anchors are laid out as mmdetection's `AnchorGenerator` lays them out. The order of the coder's operations matters:
these detectors are trained and evaluated with mmdetection's `DeltaXYWHBBoxCoder`, and a different but
mathematically equal formula (torchvision's, for example) rounds differently in float32, which is enough to flip
marginal NMS decisions downstream.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

# mmdetection clamps log-space size deltas to |log(16 / 1000)|.
DEFAULT_WH_RATIO_CLIP = 16 / 1000


class DeltaXYWHBoxCoder:
    """Encodes boxes as normalized deltas from reference boxes (anchors or proposals) and decodes them back.

    Args:
        means: Means subtracted from the deltas when encoding (added back when decoding).
        stds: Standard deviations the deltas are divided by when encoding (multiplied by when decoding).
        wh_ratio_clip: Size deltas are clamped to `±|log(wh_ratio_clip)|` when decoding.
    """

    def __init__(
        self,
        means: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
        stds: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        wh_ratio_clip: float = DEFAULT_WH_RATIO_CLIP,
    ) -> None:
        self.means = tuple(float(value) for value in means)
        self.stds = tuple(float(value) for value in stds)
        self.max_log_ratio = abs(math.log(wh_ratio_clip))

    def decode(
        self,
        reference_boxes: torch.Tensor,
        deltas: torch.Tensor,
        max_shape: tuple[int, int] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Apply `deltas` to `reference_boxes`.

        Args:
            reference_boxes: `(N, 4)` boxes as x1, y1, x2, y2.
            deltas: `(N, 4 * K)` deltas, K boxes per reference box (one per class, or one).
            max_shape: `(height, width)` to clip the decoded boxes to, or an `(N, 2)` tensor of one
                `(height, width)` per reference box; `None` leaves boxes unclipped.

        Returns:
            `(N, 4 * K)` decoded boxes.
        """
        num_boxes = deltas.size(0)
        boxes_per_reference = deltas.size(1) // 4
        if num_boxes == 0:
            return deltas
        deltas = deltas.reshape(-1, 4)
        means = deltas.new_tensor(self.means).view(1, -1)
        stds = deltas.new_tensor(self.stds).view(1, -1)
        denormalized = deltas * stds + means
        center_deltas = denormalized[:, :2]
        size_deltas = denormalized[:, 2:]

        references = reference_boxes.repeat(1, boxes_per_reference).reshape(-1, 4)
        reference_centers = (references[:, :2] + references[:, 2:]) * 0.5
        reference_sizes = references[:, 2:] - references[:, :2]

        center_shift = reference_sizes * center_deltas
        size_deltas = size_deltas.clamp(min=-self.max_log_ratio, max=self.max_log_ratio)
        centers = reference_centers + center_shift
        sizes = reference_sizes * size_deltas.exp()
        top_left = centers - (sizes * 0.5)
        bottom_right = centers + (sizes * 0.5)
        boxes = torch.cat([top_left, bottom_right], dim=-1)
        if max_shape is not None:
            boxes = clip_boxes(boxes, max_shape, boxes_per_reference)
        return boxes.reshape(num_boxes, -1)

    def encode(self, reference_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """Deltas that turn each of `reference_boxes` into the matching row of `target_boxes` (both `(N, 4)`)."""
        reference_boxes = reference_boxes.float()
        target_boxes = target_boxes.float()
        reference_centers = (reference_boxes[..., :2] + reference_boxes[..., 2:]) * 0.5
        reference_sizes = reference_boxes[..., 2:] - reference_boxes[..., :2]
        target_centers = (target_boxes[..., :2] + target_boxes[..., 2:]) * 0.5
        target_sizes = target_boxes[..., 2:] - target_boxes[..., :2]
        center_deltas = (target_centers - reference_centers) / reference_sizes
        size_deltas = torch.log(target_sizes / reference_sizes)
        deltas = torch.cat([center_deltas, size_deltas], dim=-1)
        means = deltas.new_tensor(self.means).view(1, -1)
        stds = deltas.new_tensor(self.stds).view(1, -1)
        return (deltas - means) / stds


def clip_boxes(
    boxes: torch.Tensor, max_shape: tuple[int, int] | torch.Tensor, boxes_per_row: int = 1
) -> torch.Tensor:
    """Clamp x to `[0, width]` and y to `[0, height]` (both ends included), as mmdetection does.

    `max_shape` is one `(height, width)`, or an `(R, 2)` tensor with one size per group of `boxes_per_row`
    consecutive boxes.
    """
    if isinstance(max_shape, torch.Tensor) and max_shape.dim() == 2:
        limits = max_shape.to(boxes.dtype).repeat_interleave(boxes_per_row, dim=0)
        heights, widths = limits[:, 0:1], limits[:, 1:2]
        zero = torch.zeros((), dtype=boxes.dtype, device=boxes.device)
        x_coordinates = torch.minimum(torch.maximum(boxes[:, 0::2], zero), widths)
        y_coordinates = torch.minimum(torch.maximum(boxes[:, 1::2], zero), heights)
        return torch.stack(
            [x_coordinates[:, 0], y_coordinates[:, 0], x_coordinates[:, 1], y_coordinates[:, 1]], dim=1
        )
    height, width = (int(value) for value in max_shape)
    boxes[..., 0::2].clamp_(min=0, max=width)
    boxes[..., 1::2].clamp_(min=0, max=height)
    return boxes


class AnchorGenerator:
    """Anchors of every pyramid level, in (row, column, anchor) order.

    Per level the base anchors are centred on 0 (mmdetection's `center_offset=0`) with widths
    `stride * scale / sqrt(ratio)` and heights `stride * scale * sqrt(ratio)`, ratio-major; they are then
    shifted by `column * stride` and `row * stride`.

    Args:
        strides: Stride (and base anchor size) of each level.
        scales: Anchor sizes in units of the stride.
        ratios: Height/width ratios.
    """

    def __init__(self, strides: Sequence[int], scales: Sequence[float], ratios: Sequence[float]) -> None:
        self.strides = [int(stride) for stride in strides]
        self.scales = [float(scale) for scale in scales]
        self.ratios = [float(ratio) for ratio in ratios]
        self._cache: dict[tuple, list[torch.Tensor]] = {}

    @property
    def num_anchors_per_location(self) -> int:
        return len(self.scales) * len(self.ratios)

    def base_anchors(self) -> list[torch.Tensor]:
        """`(A, 4)` anchors of each level centred on 0, computed in float32 on the CPU as mmdetection does."""
        # An explicit device keeps this real even when the model is being built on the meta device.
        scales = torch.tensor(self.scales, dtype=torch.float32, device="cpu")
        ratios = torch.tensor(self.ratios, dtype=torch.float32, device="cpu")
        return [self._level_base_anchors(stride, scales, ratios) for stride in self.strides]

    @staticmethod
    def _level_base_anchors(base_size: int, scales: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
        height_ratios = torch.sqrt(ratios)
        width_ratios = 1 / height_ratios
        widths = (base_size * width_ratios[:, None] * scales[None, :]).view(-1)
        heights = (base_size * height_ratios[:, None] * scales[None, :]).view(-1)
        return torch.stack([0.0 - 0.5 * widths, 0.0 - 0.5 * heights, 0.0 + 0.5 * widths, 0.0 + 0.5 * heights], dim=-1)

    def grid_anchors(
        self, feature_sizes: Sequence[tuple[int, int]], device: torch.device, dtype: torch.dtype = torch.float32
    ) -> list[torch.Tensor]:
        """`(H * W * A, 4)` anchors for each level, for feature maps of the given `(H, W)` sizes."""
        key = (tuple(tuple(size) for size in feature_sizes), str(device), dtype)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        anchors = []
        for (height, width), stride, base in zip(feature_sizes, self.strides, self.base_anchors()):
            shift_x = torch.arange(0, width, device=device).to(dtype) * stride
            shift_y = torch.arange(0, height, device=device).to(dtype) * stride
            grid_y, grid_x = torch.meshgrid(shift_y, shift_x, indexing="ij")
            grid_x, grid_y = grid_x.reshape(-1), grid_y.reshape(-1)
            shifts = torch.stack([grid_x, grid_y, grid_x, grid_y], dim=-1)
            anchors.append((base.to(device=device, dtype=dtype)[None, :, :] + shifts[:, None, :]).view(-1, 4))
        if len(self._cache) > 32:
            self._cache.clear()
        self._cache[key] = anchors
        return anchors


__all__ = ["DEFAULT_WH_RATIO_CLIP", "AnchorGenerator", "DeltaXYWHBoxCoder", "clip_boxes"]
