"""Proposals from outside the model (selective search, another detector): checked, and carried into the network's
input frame the way mmdetection's `LoadProposals`, `Resize` and `RandomFlip` carry them.

The RoI head then classifies and refines these boxes instead of the RPN's: mmdetection's Fast R-CNN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .errors import InvalidAnnotationError


def _as_box_array(boxes: Any, index: int) -> np.ndarray:
    array = boxes.detach().cpu().numpy() if isinstance(boxes, torch.Tensor) else np.asarray(boxes)
    if array.size == 0:
        return np.zeros((0, 4), dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != 4:
        raise InvalidAnnotationError(
            f"proposals[{index}] must have shape (n, 4) (x1, y1, x2, y2), got {tuple(array.shape)}."
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InvalidAnnotationError(f"proposals[{index}] must hold real numbers, got {array.dtype}.")
    return array.astype(np.float32)


def _check_boxes(boxes: torch.Tensor | np.ndarray, index: int) -> None:
    finite = torch.isfinite(boxes).all() if isinstance(boxes, torch.Tensor) else np.isfinite(boxes).all()
    if not bool(finite):
        raise InvalidAnnotationError(f"proposals[{index}] contains NaN or infinite values.")
    reversed_boxes = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bool(reversed_boxes.any()):
        raise InvalidAnnotationError(
            f"proposals[{index}] has boxes with x2 < x1 or y2 < y1; proposals are x1, y1, x2, y2 (convert "
            "[x, y, width, height] boxes first)."
        )


def check_proposals(proposals: Any, batch_size: int, device: torch.device) -> list[torch.Tensor]:
    """The `proposals` argument of the model as one `(n_i, 4)` float32 tensor per image on `device`.

    Args:
        proposals: One `(n_i, 4)` tensor or array per image (a list, or a `(batch, n, 4)` tensor), x1, y1, x2, y2.
        batch_size: Images in the batch.
        device: The model's device.
    """
    if isinstance(proposals, torch.Tensor) and proposals.dim() == 3:
        proposals = list(proposals)
    if not isinstance(proposals, Sequence) or isinstance(proposals, (str, bytes)):
        raise InvalidAnnotationError(
            f"proposals must be a list with one (n, 4) box tensor per image, got {type(proposals).__name__}."
        )
    if len(proposals) != batch_size:
        raise InvalidAnnotationError(f"proposals has {len(proposals)} entries for a batch of {batch_size} images.")
    checked = []
    for index, boxes in enumerate(proposals):
        if isinstance(boxes, torch.Tensor):
            if boxes.numel() == 0:
                boxes = boxes.reshape(0, 4)
            if boxes.dim() != 2 or boxes.size(1) != 4:
                raise InvalidAnnotationError(
                    f"proposals[{index}] must have shape (n, 4) (x1, y1, x2, y2), got {tuple(boxes.shape)}."
                )
            if boxes.is_complex() or boxes.dtype == torch.bool:
                raise InvalidAnnotationError(f"proposals[{index}] must hold real numbers, got {boxes.dtype}.")
            boxes = boxes.to(device=device, dtype=torch.float32)
        else:
            boxes = torch.from_numpy(_as_box_array(boxes, index)).to(device)
        _check_boxes(boxes, index)
        checked.append(boxes)
    return checked


def proposals_to_input_frame(
    boxes: Any,
    original_size: tuple[int, int],
    resized_size: tuple[int, int],
    flipped: bool,
    index: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """One image's proposals, given in original-image pixels, in the network's input frame.

    Scaled by mmdetection's per-axis factors (resized / original), clipped to the resized image and flipped left
    to right with it, as mmdetection's `Resize` and `RandomFlip` move proposals. Every box is kept, in order.

    Args:
        boxes: `(n, 4)` x1, y1, x2, y2 in pixels of the original image.
        original_size: `(height, width)` before resizing.
        resized_size: `(height, width)` after resizing.
        flipped: Whether the resized image was flipped left to right.
        index: Position of the image in the batch, for error messages.
        device: Where to put the result.
    """
    array = _as_box_array(boxes, index)
    _check_boxes(array, index)
    original_height, original_width = original_size
    resized_height, resized_width = resized_size
    scales = np.array([resized_width / original_width, resized_height / original_height] * 2, dtype=np.float32)
    array = array * scales
    array[:, 0::2] = array[:, 0::2].clip(0, resized_width)
    array[:, 1::2] = array[:, 1::2].clip(0, resized_height)
    if flipped:
        array = np.stack([resized_width - array[:, 2], array[:, 1], resized_width - array[:, 0], array[:, 3]], axis=1)
    return torch.as_tensor(np.ascontiguousarray(array.reshape(-1, 4)), dtype=torch.float32, device=device)


__all__ = ["check_proposals", "proposals_to_input_frame"]
