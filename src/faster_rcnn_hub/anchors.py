"""Anchor boxes for the RPN, laid out as mmdetection's `AnchorGenerator` lays them out."""

from __future__ import annotations

from collections.abc import Sequence

import torch


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
