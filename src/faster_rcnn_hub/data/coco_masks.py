"""COCO instance masks: binary masks to and from `segmentation` (RLE, compressed or not, and polygons), and the
checks that say what is wrong with a malformed one.

pycocotools (a dependency of the package) does the encoding and decoding, so masks are exactly COCO's; it is
imported on first use, so `import faster_rcnn_hub` stays light.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np


def _coco_mask():
    from pycocotools import mask as coco_mask

    return coco_mask


def mask_to_rle(mask: np.ndarray) -> dict:
    """COCO's compressed RLE of a binary `(H, W)` mask, JSON-ready (`counts` as text); exact for any pixel set.

    Args:
        mask: `(H, W)` array, nonzero inside the object.

    Returns:
        `{"size": [H, W], "counts": str}`.
    """
    rle = _coco_mask().encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(value) for value in rle["size"]], "counts": rle["counts"].decode("ascii")}


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """The `(height, width)` uint8 mask (1 inside) of a COCO `segmentation`, as pycocotools' `annToMask` gives it.

    Args:
        segmentation: Polygons (a list of `[x1, y1, x2, y2, ...]` lists), uncompressed RLE (`counts` a list of
            run lengths) or compressed RLE (`counts` text or bytes), in pixels of an image of this size. Check it
            first with `segmentation_problems`.
        height: Image height.
        width: Image width.
    """
    coco_mask = _coco_mask()
    if isinstance(segmentation, list):
        rle = coco_mask.merge(coco_mask.frPyObjects([list(map(float, polygon)) for polygon in segmentation],
                                                    height, width))  # fmt: skip
    elif isinstance(segmentation["counts"], list):
        rle = coco_mask.frPyObjects(dict(segmentation), height, width)
    else:
        counts = segmentation["counts"]
        rle = {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return np.ascontiguousarray(coco_mask.decode(rle), dtype=np.uint8)


def segmentation_problems(segmentation: Any, height: Any = None, width: Any = None) -> list[str]:
    """What is wrong with a COCO `segmentation` (an empty list when nothing is).

    An empty list (no mask, as box-only files often write) is no problem. Polygons need at least 3 points of
    finite coordinates each; RLE needs a `size` of two positive integers (the image's `height` and `width`, when
    given) and `counts` whose run lengths are non-negative and cover the image exactly (compressed text is
    decoded as pycocotools reads it).
    """
    if isinstance(segmentation, list):
        # An empty list is how box-only files often say "no mask": nothing wrong for box training.
        return [problem for number, polygon in enumerate(segmentation)
                for problem in _polygon_problems(polygon, number)]  # fmt: skip
    if not isinstance(segmentation, Mapping):
        return [f"segmentation must be polygons (a list of [x1, y1, x2, y2, ...] lists) or RLE ({{'size': [height, "
                f"width], 'counts': ...}}), got {_short(segmentation)}"]  # fmt: skip
    size, counts = segmentation.get("size"), segmentation.get("counts")
    if not (
        isinstance(size, (list, tuple)) and len(size) == 2 and all(_is_integer(side) and side > 0 for side in size)
    ):
        return [f"segmentation RLE 'size' must be [height, width], two positive integers, got {_short(size)}"]
    if _is_integer(height) and _is_integer(width) and [int(size[0]), int(size[1])] != [height, width]:
        return [f"segmentation RLE 'size' {list(size)} is not the image's [height, width] {[height, width]}"]
    if isinstance(counts, (str, bytes)):
        runs = _compressed_runs(counts.decode("ascii", "replace") if isinstance(counts, bytes) else counts)
        if runs is None:
            return [f"segmentation RLE 'counts' {_short(counts)} is not COCO's compressed RLE text"]
    elif isinstance(counts, list) and all(_is_integer(value) for value in counts):
        runs = [int(value) for value in counts]
    else:
        return [f"segmentation RLE 'counts' must be run lengths (a list of integers) or compressed RLE text, "
                f"got {_short(counts)}"]  # fmt: skip
    if any(run < 0 for run in runs):
        return ["segmentation RLE 'counts' has a negative run length"]
    if sum(runs) != size[0] * size[1]:
        return [f"segmentation RLE 'counts' covers {sum(runs)} pixels, not the {size[0]} x {size[1]} = "
                f"{size[0] * size[1]} of its size"]  # fmt: skip
    return []


def _polygon_problems(polygon: Any, number: int) -> list[str]:
    if (
        not isinstance(polygon, (list, tuple))
        or not all(isinstance(value, numbers.Real) and not isinstance(value, bool) for value in polygon)
        or not all(math.isfinite(value) for value in polygon)
    ):
        return [f"segmentation polygon {number} must be a list of finite numbers [x1, y1, x2, y2, ...], "
                f"got {_short(polygon)}"]  # fmt: skip
    if len(polygon) < 6 or len(polygon) % 2:
        return [f"segmentation polygon {number} needs an even count of at least 6 numbers (3 points), "
                f"got {len(polygon)}"]  # fmt: skip
    return []


def _compressed_runs(text: str) -> list[int] | None:
    """The run lengths of COCO's compressed RLE text (pycocotools' `rleFrString`), `None` if it is not one."""
    # Imported here: the model folder's modules load torch, and this module stays light.
    from ..models.faster_rcnn.mask_encoding import decompress_counts

    try:
        return decompress_counts(text)
    except ValueError:
        return None


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
