"""Checking image files from their headers, before any work, without decoding them: a command given many images
stops on a missing or foreign file at once, while decoding waits until each image's turn (one batch in memory)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..errors import InvalidImageError
from ..models.faster_rcnn.image_io import MAX_IMAGE_PIXELS


def check_image_file(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """Raise `InvalidImageError` when `path` is missing, empty, not in an image format, or has more pixels than
    `max_pixels`; reads only the header (a file truncated after it fails later, when it is decoded).

    Args:
        path: The image file.
        max_pixels: The most pixels an image may have (`load_image`'s limit).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidImageError(f"Image file not found: {path}" if not path.exists() else
                                f"Expected an image file but {path} is a directory.")  # fmt: skip
    if path.stat().st_size == 0:
        raise InvalidImageError(f"Image file {path} is empty (0 bytes).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except UnidentifiedImageError as error:
        raise InvalidImageError(
            f"{path} is not a readable image: its content is in no image format Pillow can decode "
            "(PNG, JPEG, BMP, GIF, TIFF, WebP, ...)."
        ) from error
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise InvalidImageError(f"Image {path} is truncated or corrupt ({error}).") from error
    if width * height > max_pixels:
        raise InvalidImageError(
            f"Image {path} has {width} x {height} pixels, more than the limit of {max_pixels}; refusing to decode "
            "it. Downscale it first."
        )
