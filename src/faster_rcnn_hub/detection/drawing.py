"""Drawing detections on an image."""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont

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
        detections: Dicts with `label` (name), `label_id` (int), `score` and `box` (`[x1, y1, x2, y2]`).
        line_width: Box outline width; by default about 0.3% of the image's longer side.
        font_size: Label text size in pixels; by default 2.2% of the image's longer side (at least 11).
    """
    annotated = image.convert("RGB")
    draw = ImageDraw.Draw(annotated)
    longer = max(annotated.size)
    width = line_width or max(1, round(longer * 0.003))
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
