"""Selective search (Uijlings et al., 2013) through OpenCV's `ximgproc.segmentation`, as R-CNN and Fast R-CNN used it.

It lives in OpenCV's contrib build (`opencv-contrib-python-headless`, a dependency of this package), which also
holds everything the exact mmdetection resize needs.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from ..errors import InvalidImageError, MissingDependencyError

# OpenCV's two strategies: "fast" (2 colour spaces, 2 similarity mixes, k = 50 and 100) and "quality" (more colour
# spaces, mixes and k values, several times slower and more proposals).
SELECTIVE_SEARCH_MODES = ("fast", "quality")


def _segmentation_module():
    try:
        import cv2
    except ImportError as error:
        raise MissingDependencyError(
            "Selective search needs OpenCV's contrib build: pip install opencv-contrib-python-headless==5.0.0.93."
        ) from error
    if not hasattr(cv2, "ximgproc"):
        raise MissingDependencyError(
            "Selective search needs OpenCV's contrib build (cv2.ximgproc), but the installed OpenCV has no contrib "
            "modules: pip uninstall opencv-python-headless opencv-python, then pip install "
            "opencv-contrib-python-headless==5.0.0.93."
        )
    return cv2, cv2.ximgproc.segmentation


@functools.cache
def _c_library() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)
    except OSError:  # pragma: no cover - platforms without a process-wide C library handle
        return None


def _seed_c_random(seed: int) -> None:
    # OpenCV ranks selective search's regions with C's `rand()`; seeding it makes the ranking repeatable.
    library = _c_library()
    if library is not None and hasattr(library, "srand"):
        library.srand(ctypes.c_uint(seed))


def selective_search(image: np.ndarray, mode: str = "fast", max_proposals: int | None = None) -> np.ndarray:
    """Selective search proposals of one image, in OpenCV's ranking (best first).

    OpenCV ranks the regions of its hierarchical groupings as Uijlings et al. do (a region's level in its
    grouping times a random number drawn with C's `rand()`); `rand()` is seeded with 0 before each image, so a
    given image always gets the same proposals in the same order. Duplicates are removed.

    Args:
        image: `(H, W, 3)` uint8 RGB image.
        mode: `"fast"` or `"quality"` (see `SELECTIVE_SEARCH_MODES`).
        max_proposals: Keep the first this many (all when `None`).

    Returns:
        `(n, 4)` float32 boxes x1, y1, x2, y2 in pixels of `image`.
    """
    if mode not in SELECTIVE_SEARCH_MODES:
        raise ValueError(f"mode must be one of {SELECTIVE_SEARCH_MODES}, got {mode!r}.")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        description = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image)
        raise InvalidImageError(f"selective_search takes an (H, W, 3) uint8 RGB image, got {description}.")
    cv2, segmentation = _segmentation_module()
    search = segmentation.createSelectiveSearchSegmentation()
    # OpenCV segments the colour channels in BGR order (its colour-space conversions assume it).
    search.setBaseImage(np.ascontiguousarray(image[:, :, ::-1]))
    if mode == "fast":
        search.switchToSelectiveSearchFast()
    else:
        search.switchToSelectiveSearchQuality()
    _seed_c_random(0)
    rects = np.asarray(search.process(), dtype=np.float32).reshape(-1, 4)
    if max_proposals is not None:
        rects = rects[:max_proposals]
    # OpenCV's rectangles are x, y, width, height.
    return np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)


__all__ = ["SELECTIVE_SEARCH_MODES", "selective_search"]
