"""Drawing detections on an image."""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont


def class_color(label: int) -> tuple[int, int, int]:
    """A distinct, stable colour per class index (golden-ratio hue steps)."""
    hue = (label * 0.618033988749895) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(red * 255), int(green * 255), int(blue * 255)


def draw_detections(
    image: Image.Image,
    detections: Sequence[Mapping],
    line_width: int | None = None,
) -> Image.Image:
    """A copy of `image` with each detection's box and `label score` drawn in its class colour.

    Args:
        image: The picture the boxes refer to.
        detections: Dicts with `label` (name), `label_id` (int), `score` and `box` (`[x1, y1, x2, y2]`).
        line_width: Box outline width; by default about 0.3% of the image's longer side.
    """
    annotated = image.convert("RGB")
    draw = ImageDraw.Draw(annotated)
    width = line_width or max(1, round(max(annotated.size) * 0.003))
    font = ImageFont.load_default(size=max(10, round(max(annotated.size) * 0.015)))
    # Draw the weakest first so the strongest detections end up on top.
    for detection in sorted(detections, key=lambda item: item["score"]):
        color = class_color(int(detection["label_id"]))
        x1, y1, x2, y2 = (float(value) for value in detection["box"])
        draw.rectangle([x1, y1, x2, y2], outline=color, width=width)
        caption = f"{detection['label']} {detection['score']:.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), caption, font=font)
        text_top = max(0.0, y1 - (bottom - top) - 2)
        draw.rectangle([x1, text_top, x1 + (right - left) + 4, text_top + (bottom - top) + 2], fill=color)
        draw.text((x1 + 2, text_top), caption, fill=(0, 0, 0), font=font)
    return annotated
