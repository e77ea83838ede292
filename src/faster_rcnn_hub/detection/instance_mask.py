"""A detection's binary mask, kept as the window around its box rather than as a full-size image.

A Mask R-CNN pastes each detection's mask only inside a window of its box (mmdetection's `_do_paste_mask`); every
pixel outside is 0. Keeping just that window is what lets a 4000x3000 photo with 100 detections hold 100 box-sized
masks instead of 100 full-size ones (1.2 GB as bytes); `to_array()` builds the full mask on request, and `to_rle()`
writes COCO's run-length encoding from the window without building it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..models.faster_rcnn.mask_encoding import compress_counts, decompress_counts, run_lengths
from ..models.faster_rcnn.mask_pasting import paste_mask_windows


@dataclass(frozen=True, eq=False)
class InstanceMask:
    """One detection's binary mask in original-image pixels.

    Args:
        image_size: `(height, width)` of the image the mask covers.
        top: Row of the window's first row in the image.
        left: Column of the window's first column in the image.
        window: `bool` array of shape `(rows, columns)`: the mask inside the window; 0 everywhere else.
    """

    image_size: tuple[int, int]
    top: int
    left: int
    window: np.ndarray

    def __eq__(self, other: object) -> bool:
        # Two masks are equal when they set the same pixels, whatever windows hold them.
        if not isinstance(other, InstanceMask):
            return NotImplemented
        return self.image_size == other.image_size and self.to_rle() == other.to_rle()

    __hash__ = None  # type: ignore[assignment]  # equal masks may hold different windows

    @classmethod
    def from_rle(cls, rle: dict[str, Any]) -> InstanceMask:
        """The mask a COCO RLE (`{"size": [height, width], "counts": str}`, as `to_rle` and `detect --json` write
        it) describes, kept as the window around its set pixels.

        Raises:
            ValueError: `rle` is not such a dict, or its runs do not add up to `height * width`.
        """
        size = rle.get("size") if isinstance(rle, dict) else None
        counts = rle.get("counts") if isinstance(rle, dict) else None
        if not (isinstance(size, (list, tuple)) and len(size) == 2 and isinstance(counts, str)):
            raise ValueError(f'A mask must be COCO RLE {{"size": [height, width], "counts": str}}, got {rle!r:.80}.')
        height, width = (int(value) for value in size)
        lengths = decompress_counts(counts)
        if sum(lengths) != height * width or any(length < 0 for length in lengths):
            raise ValueError(f"The mask's RLE runs cover {sum(lengths)} pixels, not height * width = {height * width}.")
        values = np.zeros(len(lengths), dtype=bool)
        values[1::2] = True  # runs alternate 0s and 1s, starting with 0s
        mask = np.repeat(values, lengths).reshape((height, width), order="F")
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            return cls((height, width), 0, 0, np.zeros((0, 0), dtype=bool))
        top, left = int(rows[0]), int(columns[0])
        return cls((height, width), top, left, mask[top : rows[-1] + 1, left : columns[-1] + 1].copy())

    @property
    def area(self) -> int:
        """How many pixels the mask covers."""
        return int(np.count_nonzero(self.window))

    def to_array(self) -> np.ndarray:
        """The full `(height, width)` `bool` mask."""
        height, width = self.image_size
        mask = np.zeros((height, width), dtype=bool)
        rows, columns = self.window.shape
        mask[self.top : self.top + rows, self.left : self.left + columns] = self.window
        return mask

    def to_rle(self) -> dict[str, Any]:
        """COCO run-length encoding, `{"size": [height, width], "counts": str}`: what `pycocotools.mask.encode`
        gives for `to_array()` (with `counts` decoded to a string, as COCO result files hold it)."""
        height, width = self.image_size
        return {"size": [height, width], "counts": compress_counts(self._run_lengths())}

    def _run_lengths(self) -> list[int]:
        height, width = self.image_size
        rows, columns = self.window.shape
        if height * width == 0:
            return []
        if rows * columns == 0:
            return [height * width]
        # COCO reads the mask column by column: the columns before and after the window are all 0, so only the
        # window's columns, at full height, need encoding; the zeros around them join the first and last runs.
        strip = np.zeros((height, columns), dtype=bool)
        strip[self.top : self.top + rows] = self.window
        lengths = run_lengths(strip)
        lengths[0] += self.left * height
        zeros_after = (width - self.left - columns) * height
        if len(lengths) % 2 == 1:  # the last run counts 0s
            lengths[-1] += zeros_after
        elif zeros_after:
            lengths.append(zeros_after)
        return lengths


def instance_masks(
    mask_probabilities: torch.Tensor,
    boxes: torch.Tensor,
    image_size: tuple[int, int],
    threshold: float = 0.5,
) -> list[InstanceMask]:
    """The detections' masks, pasted as mmdetection pastes them (`paste_masks`), each kept as its window.

    Args:
        mask_probabilities: `(N, size, size)` mask probabilities (the model's `pred_masks` rows).
        boxes: `(N, 4)` boxes to paste at, in the image's pixels (the model's unclamped `pred_boxes` rows).
        image_size: `(height, width)` of the image.
        threshold: A pixel is set where the pasted probability is at least this (`mask_head["mask_threshold"]`).
    """
    height, width = int(image_size[0]), int(image_size[1])
    masks = []
    for window, (top, _, left, _) in paste_mask_windows(mask_probabilities, boxes, (height, width), threshold):
        if window is None:
            masks.append(InstanceMask((height, width), 0, 0, np.zeros((0, 0), dtype=bool)))
        else:
            masks.append(InstanceMask((height, width), top, left, window.cpu().numpy()))
    return masks
