"""Pasting low-resolution mask probabilities into the image, as mmdetection's `FCNMaskHead` does on the CPU.

mmdetection (`_predict_by_feat_single` and `_do_paste_mask`) pastes each mask on its own, only inside a window
around its box (x from `max(floor(x1) - 1, 0)` up to, not including, `min(ceil(x2) + 1, width)`, the same for y),
sampling the probabilities (not the logits) bilinearly at pixel centres with `grid_sample` (zero padding,
`align_corners=False`), and sets a pixel when the sampled probability is at least the threshold. Pixels outside the
window are 0; with zero padding a probability of 0.5 or more can only occur inside the box, so the window changes
no binary result, it only saves time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def paste_masks(
    mask_probabilities: torch.Tensor,
    boxes: torch.Tensor,
    image_size: tuple[int, int],
    threshold: float | None = 0.5,
) -> torch.Tensor:
    """Each detection's mask in the pixels of an image of `image_size`.

    Args:
        mask_probabilities (`torch.Tensor` of shape `(N, size, size)`):
            Mask probabilities (the model's `pred_masks` rows), for the box of the same row.
        boxes (`torch.Tensor` of shape `(N, 4)`):
            x1, y1, x2, y2 in the pixels of the image to paste into (the model's `pred_boxes` rows, in
            original-image pixels).
        image_size (`tuple[int, int]`):
            `(height, width)` of that image.
        threshold (`float`, *optional*, defaults to 0.5):
            A pixel is set where the pasted probability is `>= threshold` (mmdetection's `mask_thr_binary`).
            `None` returns the pasted probabilities instead.

    Returns:
        `torch.Tensor` of shape `(N, height, width)`: `bool` masks, or float32 probabilities with `threshold=None`.
    """
    height, width = int(image_size[0]), int(image_size[1])
    count = mask_probabilities.size(0)
    dtype = torch.bool if threshold is not None else torch.float32
    pasted = torch.zeros((count, height, width), dtype=dtype, device=mask_probabilities.device)
    probabilities = mask_probabilities.float()
    boxes = boxes.float()
    for index in range(count):
        window, (top, bottom, left, right) = _paste_one(probabilities[index], boxes[index], height, width)
        if window is None:
            continue
        pasted[index, top:bottom, left:right] = window >= threshold if threshold is not None else window
    return pasted


def paste_mask_windows(
    mask_probabilities: torch.Tensor,
    boxes: torch.Tensor,
    image_size: tuple[int, int],
    threshold: float = 0.5,
) -> list[tuple[torch.Tensor | None, tuple[int, int, int, int]]]:
    """Each detection's binary mask over its window only (the pixels `paste_masks` may set), bit for bit the
    window of `paste_masks`' result: 100 detections in a 4000x3000 photo need their boxes' pixels, not 100 full
    images.

    Args:
        mask_probabilities (`torch.Tensor` of shape `(N, size, size)`): As for `paste_masks`.
        boxes (`torch.Tensor` of shape `(N, 4)`): As for `paste_masks`.
        image_size (`tuple[int, int]`): `(height, width)` of the image.
        threshold (`float`, *optional*, defaults to 0.5): A pixel is set where the probability is `>= threshold`.

    Returns:
        One `(window, (top, bottom, left, right))` per detection: `window` is a `bool` tensor of shape
        `(bottom - top, right - left)` placed at those rows and columns, or `None` for a box with no pixel
        (an empty mask). Every pixel outside the window is 0.
    """
    height, width = int(image_size[0]), int(image_size[1])
    probabilities = mask_probabilities.float()
    boxes = boxes.float()
    windows = []
    for index in range(probabilities.size(0)):
        window, bounds = _paste_one(probabilities[index], boxes[index], height, width)
        windows.append((None if window is None else window >= threshold, bounds))
    return windows


def _paste_one(
    probabilities: torch.Tensor, box: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor | None, tuple[int, int, int, int]]:
    """One mask sampled over its window: mmdetection's `_do_paste_mask` with `skip_empty=True` on one box."""
    x1, y1, x2, y2 = box.tolist()
    # mmdetection clamps floor(min) - 1 at 0 and ceil(max) + 1 at the image size, then casts to int32.
    left = max(int(math.floor(x1)) - 1, 0)
    top = max(int(math.floor(y1)) - 1, 0)
    right = min(int(math.ceil(x2)) + 1, width)
    bottom = min(int(math.ceil(y2)) + 1, height)
    if right <= left or bottom <= top:
        return None, (top, bottom, left, right)
    device = probabilities.device
    # Pixel centres mapped into [-1, 1] across the box, in float32 and mmdetection's order of operations.
    grid_y = torch.arange(top, bottom, device=device).to(torch.float32) + 0.5
    grid_x = torch.arange(left, right, device=device).to(torch.float32) + 0.5
    grid_y = (grid_y - box[1]) / (box[3] - box[1]) * 2 - 1
    grid_x = (grid_x - box[0]) / (box[2] - box[0]) * 2 - 1
    # A zero-width or zero-height box divides by zero; mmdetection samples those positions at the centre.
    grid_x = torch.where(torch.isinf(grid_x), torch.zeros_like(grid_x), grid_x)
    grid_y = torch.where(torch.isinf(grid_y), torch.zeros_like(grid_y), grid_y)
    grid = torch.stack(
        [
            grid_x[None, :].expand(grid_y.numel(), grid_x.numel()),
            grid_y[:, None].expand(grid_y.numel(), grid_x.numel()),
        ],
        dim=-1,
    )
    sampled = F.grid_sample(probabilities[None, None], grid[None], mode="bilinear", padding_mode="zeros",
                            align_corners=False)  # fmt: skip
    return sampled[0, 0], (top, bottom, left, right)


__all__ = ["paste_mask_windows", "paste_masks"]
