"""The (dx, dy, dw, dh) box-delta coder of Faster R-CNN, in mmdetection's exact float order.

The order of operations matters: these detectors are trained and evaluated with mmdetection's
`DeltaXYWHBBoxCoder`, and a different but mathematically equal formula (torchvision's, for example) rounds
differently in float32, which is enough to flip marginal NMS decisions downstream.
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
