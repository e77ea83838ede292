"""Reading images and turning any supported image object into an upright RGB uint8 array.

mmdetection reads images with OpenCV (`IMREAD_COLOR`): 3 channels, grey copied to all three, alpha dropped
without compositing, 16-bit reduced to 8-bit by keeping the high byte (also when every value is below 256), CMYK
JPEGs converted with OpenCV's own integer formula, EXIF orientation applied. `tests/test_image_decoding.py` checks
each mode against `cv2.imdecode` pixel for pixel. Everything here reproduces that from
PIL images, NumPy arrays and tensors, and refuses what it cannot read with an `InvalidImageError` that says
what is wrong.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidImageError

ImageLike = Union[Image.Image, np.ndarray, torch.Tensor]

# More pixels than any camera makes (about 13,400 x 13,400; the largest sensors have about 150 million);
# larger files are refused from their header, before decoding. This is also Pillow's own hard limit.
MAX_IMAGE_PIXELS = 178_956_970
# Pillow's modes of 16-bit grey images (PNG, TIFF).
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def load_image(
    source: str | os.PathLike | bytes, max_pixels: int = MAX_IMAGE_PIXELS, name: str | None = None
) -> Image.Image:
    """Open an image file (or its bytes) as an upright RGB PIL image, or raise `InvalidImageError`.

    Args:
        source: A path, or the encoded bytes of an image file.
        max_pixels: Images with more pixels than this are refused before they are decoded.
        name: What error messages call the image (default: the path, or `<bytes>`).
    """
    if name is None:
        name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.exists():
            raise InvalidImageError(f"Image file not found: {path}")
        if path.is_dir():
            raise InvalidImageError(f"Expected an image file but {path} is a directory.")
        data = path.read_bytes()
    if not data:
        raise InvalidImageError(f"Image file {name} is empty (0 bytes).")
    try:
        with warnings.catch_warnings():
            # Pillow warns from about 89 million pixels; our own limit below decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise _too_many_pixels(name, width, height, max_pixels)
            image.load()
            if _is_sixteen_bit_colour_tiff(image):
                decoded = _decode_with_opencv(data)
                if decoded is not None:
                    return _upright(decoded, image)
            return _upright(image, image)
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as error:
        raise InvalidImageError(
            f"Image {name} has more pixels than the limit of {max_pixels} ({error}); refusing to decode it. "
            "Downscale it first."
        ) from error
    except UnidentifiedImageError as error:
        # Pillow's own text names the in-memory buffer ("cannot identify image file <_io.BytesIO ...>"): noise.
        raise InvalidImageError(
            f"{name} is not a readable image: its content is in no image format Pillow can decode "
            "(PNG, JPEG, BMP, GIF, TIFF, WebP, ...)."
        ) from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InvalidImageError(f"Image {name} is truncated or corrupt ({error}).") from error


# EXIF orientation -> the transpose that shows the image upright (what `ImageOps.exif_transpose` applies).
_ORIENTATION_TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _upright(pixels: Image.Image, source: Image.Image) -> Image.Image:
    """`pixels` turned by `source`'s EXIF orientation, with a CMYK JPEG's colours converted as OpenCV does."""
    if pixels is source:
        # Before the transpose, which drops `format`: only JPEG's CMYK takes OpenCV's formula (TIFF's matches PIL).
        cmyk_jpeg = source.mode == "CMYK" and source.format == "JPEG"
        upright = ImageOps.exif_transpose(source)
        return Image.fromarray(_cmyk_to_rgb_as_opencv(upright)) if cmyk_jpeg else upright
    transpose = _ORIENTATION_TRANSPOSES.get(source.getexif().get(0x0112))
    return pixels.transpose(transpose) if transpose is not None else pixels


def _is_sixteen_bit_colour_tiff(image: Image.Image) -> bool:
    # Pillow reads 16-bit colour TIFFs as 8-bit RGB with rounding; OpenCV keeps the high byte (`>> 8`), which
    # differs by one grey level on about half the pixels.
    if image.format != "TIFF" or image.mode not in ("RGB", "RGBA"):
        return False
    bits = getattr(image, "tag_v2", {}).get(258)  # BitsPerSample
    return isinstance(bits, (tuple, list)) and any(int(value) == 16 for value in bits)


def _decode_with_opencv(data: bytes) -> Image.Image | None:
    """The file decoded by `cv2.imdecode(..., IMREAD_COLOR)` as an RGB image, or `None` without OpenCV."""
    try:
        import cv2
    except ImportError:
        return None
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION  # the orientation is applied like every other file's
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if decoded is None:
        return None
    return Image.fromarray(np.ascontiguousarray(decoded[:, :, ::-1]))


def _cmyk_to_rgb_as_opencv(image: Image.Image) -> np.ndarray:
    """OpenCV's CMYK JPEG conversion (`icvCvt_CMYK2BGR_8u_C4C3R` on libjpeg's inverted Adobe values).

    PIL's `convert("RGB")` rounds differently: one grey level off on about a third of the pixels.
    """
    inverted = 255 - np.asarray(image, dtype=np.int32)
    key = inverted[:, :, 3:4]
    rgb = key - (((255 - inverted[:, :, :3]) * key) >> 8)
    return rgb.astype(np.uint8)


def _too_many_pixels(name: str, width: int, height: int, max_pixels: int) -> InvalidImageError:
    return InvalidImageError(
        f"Image {name} is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}; "
        "refusing to decode it. Downscale it first."
    )


def to_rgb_array(image: Any, channels_first: bool | None = None) -> np.ndarray:
    """An upright `(height, width, 3)` uint8 RGB array from a PIL image, NumPy array or tensor.

    Arrays and tensors are RGB; `(H, W)` and single-channel ones are grey, 4 channels are RGBA (alpha dropped).
    Integer arrays above 255 are taken as 16-bit and reduced to 8-bit; floating-point arrays are taken as
    `[0, 1]` when none of their values exceeds 1, else as `[0, 255]`.

    Args:
        image: The image.
        channels_first: Layout of a 3-D array or tensor; `None` infers it (tensors default to channels-first,
            arrays to channels-last).
    """
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    if isinstance(image, torch.Tensor):
        if image.dim() == 3 and channels_first is None:
            channels_first = not (image.shape[-1] in (1, 3, 4) and image.shape[0] not in (1, 3, 4))
        image = image.detach().cpu()
        if image.dtype == torch.bfloat16:
            image = image.float()
        return _array_to_rgb(image.numpy(), bool(channels_first))
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and channels_first is None:
            channels_first = image.shape[0] in (1, 3, 4) and image.shape[-1] not in (1, 3, 4)
        return _array_to_rgb(image, bool(channels_first))
    raise InvalidImageError(
        f"Unsupported image type {type(image).__name__}; pass a PIL image, a NumPy array or a torch tensor."
    )


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise _too_many_pixels("given", width, height, MAX_IMAGE_PIXELS)
    try:
        image = _upright(image, image)
        if image.mode in SIXTEEN_BIT_MODES or (image.mode == "I" and image.format == "PNG"):
            # A 16-bit file (PNG holds at most 16 bits, also where Pillow says "I"): OpenCV always keeps the
            # high byte, so a dark image (every value <= 255) becomes nearly black, not 8-bit as it is.
            return _array_to_rgb(np.asarray(image).astype(np.uint16), channels_first=False, sixteen_bit=True)
        if image.mode in ("I", "F"):
            return _array_to_rgb(np.asarray(image), channels_first=False)
        if image.mode != "RGB":
            with warnings.catch_warnings():
                # Pillow suggests RGBA for palette images with transparency; we drop alpha as OpenCV does.
                warnings.simplefilter("ignore", UserWarning)
                image = image.convert("RGB")
        return np.asarray(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        # A lazily opened PIL image is only decoded here; a damaged file surfaces now.
        raise InvalidImageError(f"The image cannot be decoded; it is truncated or corrupt ({error}).") from error


def _array_to_rgb(array: np.ndarray, channels_first: bool, sixteen_bit: bool = False) -> np.ndarray:
    if array.ndim == 3 and channels_first:
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise InvalidImageError(
            f"Expected an image of shape (height, width) or (height, width, channels), got shape {array.shape}."
        )
    height, width, channels = array.shape
    if height == 0 or width == 0:
        raise InvalidImageError(f"Image has no pixels (shape {array.shape}).")
    if channels not in (1, 3, 4):
        raise InvalidImageError(
            f"Expected 1 (grey), 3 (RGB) or 4 (RGBA) channels, got {channels} (shape {array.shape})."
        )
    array = (array.astype(np.uint32) >> 8).astype(np.uint8) if sixteen_bit else _to_uint8(array)
    if channels == 1:
        array = np.repeat(array, 3, axis=2)
    elif channels == 4:
        array = array[:, :, :3]
    return np.ascontiguousarray(array)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise InvalidImageError(
                f"Integer image values must lie in [0, 65535], got [{array.min()}, {array.max()}]."
            )
        if array.size and array.max() > 255:
            return (array.astype(np.uint32) >> 8).astype(np.uint8)
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InvalidImageError("Image contains NaN or infinite values.")
        scale = 255.0 if array.size and array.max() <= 1.0 else 1.0
        return np.clip(np.rint(array.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    raise InvalidImageError(f"Unsupported image dtype {array.dtype}.")
