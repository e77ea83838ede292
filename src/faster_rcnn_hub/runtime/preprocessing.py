"""The image processor's test-time preprocessing in NumPy and OpenCV, for runtimes without PyTorch.

Each step repeats `FasterRCNNImageProcessor`'s operations in the same order and precision: mmcv's keep-ratio size
(`int(side * scale + 0.5)`, in double precision), `cv2.resize(..., INTER_LINEAR)` on uint8, the channel swap, a
float32 `(pixel - mean) / std` and zero padding to the next multiple of `pad_size_divisor`. Element-wise float32
subtraction and division round the same in NumPy and PyTorch, so the pixels are equal bit for bit
(tests/test_onnx_runtime.py compares them).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from ..errors import FasterRCNNHubError, InvalidImageError, MissingDependencyError

# Pillow modes holding more than 8 bits per pixel: OpenCV (so mmdetection) keeps the high byte.
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


@dataclass
class PreparedImage:
    """One image as the exported graph takes it."""

    pixel_values: np.ndarray  # (1, 3, padded_height, padded_width) float32
    image_size: np.ndarray  # (2,) int64: resized (height, width)
    rescale_factor: np.ndarray  # (2,) float32: original / resized, (width, height)
    original_size: tuple[int, int]  # (height, width)


class Preprocessor:
    """Test-time preprocessing from the settings of a `preprocessor_config.json`.

    Args:
        settings: The image processor's saved settings (`size`, `do_resize`, `resize_backend`, `do_normalize`,
            `image_mean`, `image_std`, `channel_order`, `do_pad`, `pad_size_divisor`).
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        self.do_resize = bool(settings.get("do_resize", True))
        size = settings.get("size") or {"longest_edge": 1333, "shortest_edge": 800}
        self.longest_edge, self.shortest_edge = int(size["longest_edge"]), int(size["shortest_edge"])
        if self.do_resize and settings.get("resize_backend", "opencv") != "opencv":
            raise FasterRCNNHubError(
                f"This model's image processor resizes with resize_backend={settings['resize_backend']!r}, which "
                "needs PyTorch; the torch-free runtime resizes with OpenCV only. Save the processor with "
                "resize_backend='opencv' (mmdetection's exact resize) and export again."
            )
        self.do_normalize = bool(settings.get("do_normalize", True))
        self.mean = np.asarray(settings.get("image_mean", [123.675, 116.28, 103.53]), dtype=np.float32)
        self.std = np.asarray(settings.get("image_std", [58.395, 57.12, 57.375]), dtype=np.float32)
        self.bgr = settings.get("channel_order", "rgb") == "bgr"
        self.pad_divisor = int(settings.get("pad_size_divisor", 32)) if settings.get("do_pad", True) else 1

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """`(height, width)` after the keep-ratio resize (`rescaled_size` of the image processor)."""
        if not self.do_resize:
            return height, width
        scale = min(self.longest_edge / max(height, width), self.shortest_edge / min(height, width))
        return max(int(height * float(scale) + 0.5), 1), max(int(width * float(scale) + 0.5), 1)

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """`(height, width)` a resized image is padded to: the next multiples of `pad_size_divisor`."""
        divisor = self.pad_divisor
        return math.ceil(height / divisor) * divisor, math.ceil(width / divisor) * divisor

    def __call__(self, image: Any) -> PreparedImage:
        """Prepare one image (a path, encoded bytes, a PIL image or a uint8 `(H, W)` / `(H, W, 3|4)` array)."""
        array = to_rgb_uint8(image)
        original_height, original_width = array.shape[:2]
        height, width = self.resized_size(original_height, original_width)
        if (height, width) != (original_height, original_width):
            array = _opencv().resize(array, (width, height), interpolation=_opencv().INTER_LINEAR)
        if self.bgr:
            array = array[:, :, ::-1]
        values = array.astype(np.float32)
        if self.do_normalize:
            values = (values - self.mean) / self.std
        padded_height, padded_width = self.padded_size(height, width)
        pixel_values = np.zeros((1, 3, padded_height, padded_width), dtype=np.float32)
        pixel_values[0, :, :height, :width] = values.transpose(2, 0, 1)
        # mmdetection's factors: 1 / (resized / original), in double precision, then float32 (as roi_heads.py).
        rescale_factor = np.asarray([1 / (width / original_width), 1 / (height / original_height)], dtype=np.float32)
        return PreparedImage(
            pixel_values=pixel_values,
            image_size=np.asarray([height, width], dtype=np.int64),
            rescale_factor=rescale_factor,
            original_size=(original_height, original_width),
        )


def to_rgb_uint8(image: Any) -> np.ndarray:
    """An upright `(H, W, 3)` uint8 RGB array, read as the image processor reads it (EXIF orientation applied,
    grey copied to three channels, alpha dropped, 16-bit reduced to its high byte)."""
    if isinstance(image, (str, os.PathLike, bytes, bytearray)):
        image = _open(image)
    if isinstance(image, Image.Image):
        image = ImageOps.exif_transpose(image)
        if image.mode in _WIDE_MODES:
            wide = np.asarray(image).astype(np.int64)
            array = ((wide.astype(np.uint32) >> 8) if wide.size and wide.max() > 255 else wide).astype(np.uint8)
        else:
            array = np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise InvalidImageError(
            f"Unsupported image type {type(image).__name__}; the torch-free runtime takes a path, image bytes, "
            "a PIL image or a uint8 NumPy array."
        )
    if array.dtype != np.uint8:
        raise InvalidImageError(f"Arrays must be uint8 (0-255) for the torch-free runtime, got {array.dtype}.")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or 0 in array.shape[:2]:
        raise InvalidImageError(f"Expected an (height, width[, 1|3|4]) image, got shape {array.shape}.")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def _open(source: str | os.PathLike | bytes | bytearray) -> Image.Image:
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        data = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
        image = Image.open(io.BytesIO(data))
        image.load()
        return image
    except FileNotFoundError as error:
        raise InvalidImageError(f"Image file not found: {name}") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InvalidImageError(f"{name} is not a readable image ({error}).") from error


def _opencv() -> Any:
    try:
        import cv2
    except ImportError as error:
        raise MissingDependencyError(
            "The exported model's resize is OpenCV's: pip install 'faster-rcnn-hub[export]' "
            "(or opencv-python-headless)."
        ) from error
    return cv2


__all__ = ["PreparedImage", "Preprocessor", "to_rgb_uint8"]
