"""NMS of every image of a batch in one graph operation: ONNX `NonMaxSuppression` with its batch dimension.

Each image's boxes are NMS'd only among themselves, with the group offsets (`group * (max coordinate + 1)`)
that image alone would get: offsets that also kept images apart would be larger and round IoUs differently (see
`nms.py`), so the images are kept apart by NonMaxSuppression's batch dimension instead. Boxes that do not belong
to an image carry the score `ABSENT_SCORE`, below the operator's score threshold, and are never selected.
"""

from __future__ import annotations

import sys

import torch
from torchvision.models.detection._utils import _topk_min
from torchvision.ops import nms as torchvision_nms

# Real scores are probabilities (>= 0); absent boxes score -1 and the NMS drops everything at or below -0.5.
ABSENT_SCORE = -1.0
_SCORE_THRESHOLD = -0.5


class _BatchNonMaxSuppression(torch.autograd.Function):
    """`(batch, boxes, 4)` boxes and `(batch, boxes)` scores -> `(selected, 2)` int64 rows `(image, box)`, by
    image, then by decreasing score: ONNX `NonMaxSuppression` (one class), computed in PyTorch when traced."""

    @staticmethod
    def forward(ctx, boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:  # noqa: ARG004
        selected = []
        for image in range(boxes.shape[0]):
            present = torch.where(scores[image] > _SCORE_THRESHOLD)[0]
            kept = present[torchvision_nms(boxes[image, present], scores[image, present], iou_threshold)]
            selected.append(torch.stack([torch.full_like(kept, image), kept], dim=1))
        return torch.cat(selected) if selected else boxes.new_zeros((0, 2), dtype=torch.int64)

    @staticmethod
    def symbolic(graph, boxes, scores, iou_threshold: float):  # noqa: ANN001, ANN205 (ONNX graph values)
        axis_one = graph.op("Constant", value_t=torch.tensor([1], dtype=torch.long))
        selected = graph.op(
            "NonMaxSuppression",
            boxes,
            graph.op("Unsqueeze", scores, axis_one),
            graph.op("Constant", value_t=torch.tensor([sys.maxsize], dtype=torch.long)),
            graph.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float)),
            graph.op("Constant", value_t=torch.tensor([_SCORE_THRESHOLD], dtype=torch.float)),
        )
        # NonMaxSuppression's rows are (batch, class, box); there is one class.
        return graph.op("Gather", selected, graph.op("Constant", value_t=torch.tensor([0, 2])), axis_i=1)


def batch_grouped_nms(
    boxes: torch.Tensor, scores: torch.Tensor, group_ids: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """`grouped_nms` of each image of a batch: `(selected, 2)` rows `(image, box index)`, by image, then by
    decreasing score.

    Args:
        boxes: `(batch, count, 4)` clipped (non-negative) boxes; rows of absent boxes may hold anything >= 0.
        scores: `(batch, count)`, `ABSENT_SCORE` where a row is not one of the image's boxes.
        group_ids: `(batch, count)` group (level or class) of each box.
        iou_threshold: As `grouped_nms`'s.
    """
    present = scores > _SCORE_THRESHOLD
    # Each image's largest coordinate over its own boxes (and a zero, as `grouped_nms`): its offsets alone.
    own_boxes = torch.where(present[:, :, None], boxes, torch.zeros_like(boxes))
    zeros = torch.zeros_like(own_boxes[:, :1, :])
    max_coordinate = torch.cat([own_boxes, zeros], dim=1).amax(dim=(1, 2))
    offsets = group_ids.to(boxes.dtype) * (max_coordinate[:, None] + 1)
    # Ranked first, as `grouped_nms`: equal scores keep mmcv's order in any NMS kernel.
    ranked_scores, order = scores.topk(_topk_min(scores, 2**31 - 1, 1), dim=1, sorted=True)
    ranked_boxes = (boxes + offsets[:, :, None]).gather(1, order[:, :, None].expand(-1, -1, 4))
    threshold = float(torch.tensor(iou_threshold, dtype=torch.float32))
    kept = _BatchNonMaxSuppression.apply(ranked_boxes, ranked_scores, threshold)
    images = kept[:, 0]
    return torch.stack([images, order[images, kept[:, 1]]], dim=1)


def first_per_image(images: torch.Tensor, batch_size: torch.Tensor | int, limit: int) -> torch.Tensor:
    """Positions of the first `limit` rows of each image in `images` (image indices, grouped by image)."""
    counts = (images[:, None] == torch.arange(batch_size, device=images.device)[None, :]).sum(dim=0)
    starts = torch.cumsum(counts, dim=0) - counts
    rank = torch.arange(images.shape[0], device=images.device) - starts[images]
    return torch.where(rank < limit)[0]


__all__ = ["ABSENT_SCORE", "batch_grouped_nms", "first_per_image"]
