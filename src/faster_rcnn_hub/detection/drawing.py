"""Drawing detections on an image: masks (a Mask R-CNN's) filled under their boxes, boxes, labels."""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .instance_mask import InstanceMask

# How much of a mask's fill is its class colour: the object stays visible under it.
MASK_OPACITY = 0.45
# Label text height as a share of the image's longer side: about 14 px on a 640 px picture, 29 px on 1333 px.
FONT_SHARE = 0.022
MIN_FONT_SIZE = 11


def class_color(label: int) -> tuple[int, int, int]:
    """A distinct, stable colour per class index (golden-ratio hue steps)."""
    hue = (label * 0.618033988749895) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(red * 255), int(green * 255), int(blue * 255)


def draw_detections(
    image: Image.Image,
    detections: Sequence[Mapping],
    line_width: int | None = None,
    font_size: int | None = None,
) -> Image.Image:
    """A copy of `image` with each detection's box and `label score` drawn in its class colour.

    Labels sit above their box, or inside its top edge when there is no room above; every label stays inside
    the picture, and a label that would cover an earlier one (the stronger detections are labelled first)
    moves to the box's other corners, or below it, when one of those is free.

    Args:
        image: The picture the boxes refer to.
        detections: Dicts with `label` (name), `label_id` (int), `score` and `box` (`[x1, y1, x2, y2]`), and for a
            mask model `mask` (an `InstanceMask`, or its COCO RLE as `Detection.to_dict()` writes it): the masks
            are drawn first, under the boxes (`draw_masks`).
        line_width: Box outline width; by default about 0.3% of the image's longer side.
        font_size: Label text size in pixels; by default 2.2% of the image's longer side (at least 11).
    """
    longer = max(image.size)
    width = line_width or max(1, round(longer * 0.003))
    annotated = draw_masks(image, detections, outline_width=width)
    draw = ImageDraw.Draw(annotated)
    font = ImageFont.load_default(size=font_size or max(MIN_FONT_SIZE, round(longer * FONT_SHARE)))
    # Boxes first, weakest first, so the strongest outlines end up on top; labels after, so no box crosses one.
    ordered = sorted(detections, key=lambda item: item["score"])
    for detection in ordered:
        box = [float(value) for value in detection["box"]]
        draw.rectangle(box, outline=class_color(int(detection["label_id"])), width=width)
    placed: list[tuple[float, float, float, float]] = []
    for detection in reversed(ordered):
        caption = f"{detection['label']} {detection['score']:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        size = (right - left + 4, bottom - top + 4)
        spot = label_spot([float(value) for value in detection["box"]], size, annotated.size, placed)
        placed.append(spot)
        color = class_color(int(detection["label_id"]))
        draw.rectangle(spot, fill=color)
        draw.text((spot[0] + 2 - left, spot[1] + 2 - top), caption, fill=_text_color(color), font=font)
    return annotated


def draw_masks(
    image: Image.Image,
    detections: Sequence[Mapping],
    outline_width: int | None = None,
    opacity: float = MASK_OPACITY,
) -> Image.Image:
    """A copy of `image` with each detection's mask filled in its class colour (`opacity` of the colour over the
    picture) and outlined in it; detections without a `mask` are skipped, so a box model's picture is unchanged.

    Masks are drawn weakest first, so the strongest shows where masks overlap; only the pixels around each mask
    are touched, so a large photo with many detections costs what its masks cover.

    Args:
        image: The picture the masks belong to (the masks' `size` must be its height and width).
        detections: Dicts with `label_id`, `score` and, for masks to draw, `mask` (an `InstanceMask` or COCO RLE).
        outline_width: Outline width in pixels; by default about 0.3% of the image's longer side.
        opacity: Share of the class colour in the fill, in [0, 1].
    """
    annotated = image.convert("RGB")
    outline = outline_width or max(1, round(max(annotated.size) * 0.003))
    for detection in sorted(detections, key=lambda item: item["score"]):
        mask = _instance_mask(detection.get("mask"), annotated.size)
        if mask is None or mask.window.size == 0:
            continue
        rows, columns = mask.window.shape
        area = (mask.left, mask.top, mask.left + columns, mask.top + rows)
        alpha = np.where(_edge(mask.window, outline), 255, round(255 * opacity)) * mask.window
        color = Image.new("RGB", (columns, rows), class_color(int(detection["label_id"])))
        region = annotated.crop(area)
        annotated.paste(Image.composite(color, region, Image.fromarray(alpha.astype(np.uint8), "L")), area[:2])
    return annotated


def _instance_mask(value: Any, image_size: tuple[int, int]) -> InstanceMask | None:
    if value is None:
        return None
    mask = value if isinstance(value, InstanceMask) else InstanceMask.from_rle(value)
    width, height = image_size
    if tuple(mask.image_size) != (height, width):
        raise ValueError(
            f"A mask of {mask.image_size[1]}x{mask.image_size[0]} pixels cannot be drawn on a {width}x{height} "
            "image: draw detections on the image they were detected in."
        )
    return mask


def _edge(mask: np.ndarray, width: int) -> np.ndarray:
    """The mask's pixels within `width` pixels of its border (4-neighbour erosion `width` times)."""
    inner = mask.copy()
    for _ in range(width):
        padded = np.pad(inner, 1)
        inner = inner & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def _text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light label colours, white on dark ones (relative luminance, ITU-R BT.709 weights)."""
    red, green, blue = background
    return (0, 0, 0) if 0.2126 * red + 0.7152 * green + 0.0722 * blue > 110 else (255, 255, 255)


def label_spot(
    box: list[float],
    size: tuple[float, float],
    image_size: tuple[int, int],
    placed: list[tuple[float, float, float, float]],
) -> tuple[float, float, float, float]:
    """Where a label of `size` goes for `box`: the first free candidate (above the box's left corner, inside its
    top edge, at its right corner, below it), kept inside the image; the first candidate when none is free."""
    x1, y1, x2, y2 = box
    label_width, label_height = size
    image_width, image_height = image_size
    candidates = [
        (x1, y1 - label_height),
        (x1, y1),
        (x2 - label_width, y1 - label_height),
        (x2 - label_width, y1),
        (x1, y2),
        (x1, y2 - label_height),
    ]
    spots = []
    for left, top in candidates:
        left = min(max(0.0, left), max(0.0, image_width - label_width))
        top = min(max(0.0, top), max(0.0, image_height - label_height))
        spots.append((left, top, left + label_width, top + label_height))
    for spot in spots:
        if not any(_overlaps(spot, other) for other in placed):
            return spot
    return spots[0]


def _overlaps(first: tuple[float, float, float, float], second: tuple[float, float, float, float]) -> bool:
    return first[0] < second[2] and second[0] < first[2] and first[1] < second[3] and second[1] < first[3]
