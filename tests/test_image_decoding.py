"""Image files decode to exactly the pixels mmdetection's `cv2.imdecode(..., IMREAD_COLOR)` gives, for every mode:
CMYK JPEG, 16-bit PNG and TIFF (dark ones included), palette, transparency, grey with alpha, 1-bit, ...

Each case is generated here and compared with OpenCV pixel for pixel, through `load_image` (the command line, the
pipeline's paths) and through the processor given `Image.open`'s result (the documented Python API).
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from faster_rcnn_hub import FasterRCNNImageProcessor, load_image
from faster_rcnn_hub.models.faster_rcnn.image_io import to_rgb_array

RNG = np.random.default_rng(0)
# Smooth colours (a blurred noise field): JPEG keeps them, so CMYK values cover the whole range.
RGB = cv2.GaussianBlur(RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8), (5, 5), 0)
DEEP = RNG.integers(0, 65536, (37, 53, 3), dtype=np.uint16)


def _pil_encoded(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def _opencv_encoded(array: np.ndarray, extension: str) -> bytes:
    ok, encoded = cv2.imencode(extension, array)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {extension}")
    return encoded.tobytes()


def _palette() -> Image.Image:
    return Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)


FILES = {
    "cmyk-jpeg": lambda: _pil_encoded(Image.fromarray(RGB).convert("CMYK"), "JPEG", quality=95),
    "cmyk-tiff": lambda: _pil_encoded(Image.fromarray(RGB).convert("CMYK"), "TIFF"),
    "grey-jpeg": lambda: _pil_encoded(Image.fromarray(RGB).convert("L"), "JPEG", quality=95),
    "16-bit-grey-png": lambda: _pil_encoded(Image.fromarray(DEEP[:, :, 0]), "PNG"),
    "16-bit-dark-png": lambda: _pil_encoded(Image.fromarray(DEEP[:, :, 0] >> 8), "PNG"),  # every value <= 255
    "16-bit-grey-tiff": lambda: _pil_encoded(Image.fromarray(DEEP[:, :, 0]), "TIFF"),
    "16-bit-dark-tiff": lambda: _pil_encoded(Image.fromarray(DEEP[:, :, 0] >> 8), "TIFF"),
    "16-bit-colour-png": lambda: _opencv_encoded(DEEP, ".png"),
    "16-bit-colour-tiff": lambda: _opencv_encoded(DEEP, ".tiff"),
    "16-bit-rgba-png": lambda: _opencv_encoded(np.dstack([DEEP, DEEP[:, :, :1]]), ".png"),
    "palette-png": lambda: _pil_encoded(_palette(), "PNG"),
    "palette-transparent-png": lambda: _pil_encoded(_palette(), "PNG", transparency=0),
    "palette-gif": lambda: _pil_encoded(_palette(), "GIF"),
    "grey-alpha-png": lambda: _pil_encoded(Image.fromarray(RGB).convert("LA"), "PNG"),
    "rgba-png": lambda: _pil_encoded(Image.fromarray(np.dstack([RGB, RGB[:, :, 0]])), "PNG"),
    "1-bit-png": lambda: _pil_encoded(Image.fromarray(RGB).convert("1"), "PNG"),
    "grey-png": lambda: _pil_encoded(Image.fromarray(RGB).convert("L"), "PNG"),
    "bmp": lambda: _pil_encoded(Image.fromarray(RGB), "BMP"),
    "webp": lambda: _pil_encoded(Image.fromarray(RGB), "WEBP", lossless=True),
}
# Pillow hands out 16-bit colour TIFFs already rounded to 8 bits, so only `load_image` (which reads the file)
# can give OpenCV's pixels; from an `Image.open` result they may be one grey level off.
NOT_FROM_AN_OPEN_IMAGE = {"16-bit-colour-tiff"}


def opencv_rgb(data: bytes) -> np.ndarray:
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(decoded[:, :, ::-1])


@pytest.mark.parametrize("name", sorted(FILES))
def test_load_image_gives_opencvs_pixels(name):
    data = FILES[name]()
    expected = opencv_rgb(data)
    found = to_rgb_array(load_image(data))
    assert found.shape == expected.shape
    differing = int((found != expected).any(axis=2).sum())
    assert differing == 0, f"{name}: {differing} of {expected.shape[0] * expected.shape[1]} pixels differ from OpenCV"


@pytest.mark.parametrize("name", sorted(set(FILES) - NOT_FROM_AN_OPEN_IMAGE))
def test_the_processor_given_an_open_image_sees_opencvs_pixels(name):
    data = FILES[name]()
    processor = FasterRCNNImageProcessor(do_resize=False)
    found = processor(images=Image.open(io.BytesIO(data)))["pixel_values"]
    expected = processor(images=opencv_rgb(data))["pixel_values"]
    assert found.shape == expected.shape and bool((found == expected).all()), f"{name} differs from OpenCV"


def test_the_cases_are_not_trivial():
    """The generated files exercise what they claim: PIL's own conversion differs from OpenCV on the CMYK JPEG
    and the dark 16-bit PNG, so a decoder that used it would fail above."""
    cmyk = FILES["cmyk-jpeg"]()
    naive = np.asarray(Image.open(io.BytesIO(cmyk)).convert("RGB"))
    assert (naive != opencv_rgb(cmyk)).any(axis=2).mean() > 0.1
    dark = FILES["16-bit-dark-png"]()
    assert Image.open(io.BytesIO(dark)).mode.startswith("I") and opencv_rgb(dark).max() == 0
