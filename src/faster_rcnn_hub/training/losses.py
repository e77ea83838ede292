"""The loss functions of Faster R-CNN, reduced as mmdetection reduces them: weighted sum / `avg_factor`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# mmdetection's `weight_reduce_loss` adds float32's epsilon to the normaliser.
_EPS = torch.finfo(torch.float32).eps


def _reduce(loss: torch.Tensor, weights: torch.Tensor, avg_factor: float) -> torch.Tensor:
    return (loss * weights).sum() / (avg_factor + _EPS)


def sigmoid_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, avg_factor: float
) -> torch.Tensor:
    """Binary cross-entropy on logits (the RPN's objectness loss, `use_sigmoid=True`)."""
    loss = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    return _reduce(loss, weights.to(logits.dtype), avg_factor)


def softmax_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, avg_factor: float
) -> torch.Tensor:
    """Cross-entropy over classes and background (the box head's classification loss)."""
    loss = F.cross_entropy(logits, labels, reduction="none")
    return _reduce(loss, weights.to(logits.dtype), avg_factor)


def l1_loss(
    predictions: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, avg_factor: float
) -> torch.Tensor:
    """L1 distance of box deltas (both stages' regression loss)."""
    if targets.numel() == 0:
        return predictions.sum() * 0
    return _reduce(torch.abs(predictions - targets), weights.to(predictions.dtype), avg_factor)


def smooth_l1_loss(
    predictions: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, avg_factor: float, beta: float
) -> torch.Tensor:
    """mmdetection's `SmoothL1Loss`: `0.5 * d**2 / beta` below `beta`, `d - 0.5 * beta` above, `d = |p - t|`
    (Cascade R-CNN's regression loss: `beta=1` in its box stages, `1/9` in its RPN)."""
    if targets.numel() == 0:
        return predictions.sum() * 0
    difference = torch.abs(predictions - targets)
    loss = torch.where(difference < beta, 0.5 * difference * difference / beta, difference - 0.5 * beta)
    return _reduce(loss, weights.to(predictions.dtype), avg_factor)
