"""A synthetic detection data set: coloured shapes of several classes on textured, cluttered backgrounds.

Every image is drawn from its own random stream, derived from the seed and the image's index, so that image
`i` is the same whatever the number of images asked for. Annotations are pixel-exact: each box is the tight
box of the object's *visible* pixels (objects may overlap, but each stays at least half visible), its
`segmentation` is those pixels exactly (COCO RLE: a later shape drawn over it hides what it covers), and `area`
is their count, as COCO's segment area.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..errors import FasterRCNNHubError
from .coco_masks import mask_to_rle

SHAPE_CLASSES = ("circle", "square", "triangle", "star", "cross")


@dataclass(frozen=True)
class SyntheticSpec:
    """What the generated images look like.

    Args:
        image_size: `(height, width)` of every image.
        min_objects: Fewest objects per image.
        max_objects: Most objects per image.
        min_object_size: Smallest object extent (the longer side of its box before rotation), in pixels.
        max_object_size: Largest object extent, in pixels.
        max_overlap_iou: Largest IoU between the boxes of two objects.
        min_visible_fraction: Each object keeps at least this share of its pixels visible.
        clutter: Number of distractors (lines, specks, scribbles) per image, at most.
    """

    image_size: tuple[int, int] = (256, 256)
    min_objects: int = 1
    max_objects: int = 7
    min_object_size: int = 18
    max_object_size: int = 96
    max_overlap_iou: float = 0.3
    min_visible_fraction: float = 0.6
    clutter: int = 12


@dataclass
class SyntheticImage:
    """One generated image with its objects: boxes x1, y1, x2, y2 (exclusive ends, pixels), classes, areas, and
    masks (`(H, W)` bool, each object's visible pixels: `areas` are their counts, `boxes` their tight boxes)."""

    image: Image.Image
    boxes: list[list[float]] = field(default_factory=list)
    classes: list[int] = field(default_factory=list)
    areas: list[int] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)


def _image_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


# ---------------------------------------------------------------- backgrounds
def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a coarse random grid, upsampled bilinearly."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    image = Image.fromarray((grid * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32) / 255.0


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A muted textured background: noise, stripes, checks or a gradient, on two random base colours."""
    first = rng.uniform(40, 215, size=3)
    second = np.clip(first + rng.uniform(-60, 60, size=3), 0, 255)
    kind = rng.integers(4)
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == 0:
        mix = _smooth_noise(rng, height, width, int(rng.integers(3, 12)))
    elif kind == 1:
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(6, 40)
        phase = (columns * math.cos(angle) + rows * math.sin(angle)) * (2 * math.pi / period)
        mix = 0.5 + 0.5 * np.sin(phase)
    elif kind == 2:
        cell = int(rng.integers(8, 40))
        mix = (((rows // cell) + (columns // cell)) % 2).astype(np.float32)
        mix = 0.3 + 0.4 * mix
    else:
        angle = rng.uniform(0, 2 * math.pi)
        ramp = columns * math.cos(angle) + rows * math.sin(angle)
        mix = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1.0)
    pixels = first[None, None, :] * (1 - mix[..., None]) + second[None, None, :] * mix[..., None]
    pixels += rng.normal(0, rng.uniform(2, 10), size=pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _clutter(rng: np.random.Generator, canvas: Image.Image, count: int) -> None:
    """Distractors that are not objects: thin lines, arcs, specks and scribbles."""
    draw = ImageDraw.Draw(canvas)
    width, height = canvas.size
    for _ in range(int(rng.integers(0, count + 1))):
        colour = tuple(int(value) for value in rng.integers(0, 256, size=3))
        kind = rng.integers(4)
        if kind == 0:
            points = [tuple(float(v) for v in rng.uniform(0, [width, height])) for _ in range(2)]
            draw.line(points, fill=colour, width=int(rng.integers(1, 3)))
        elif kind == 1:
            x, y = rng.uniform(0, [width, height])
            radius = rng.uniform(8, 40)
            start = float(rng.uniform(0, 360))
            draw.arc([x - radius, y - radius, x + radius, y + radius], start, start + float(rng.uniform(40, 160)),
                     fill=colour, width=int(rng.integers(1, 3)))
        elif kind == 2:
            x, y = rng.uniform(0, [width, height])
            radius = rng.uniform(1, 3)
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
        else:
            start = rng.uniform(0, [width, height])
            steps = np.cumsum(rng.normal(0, 4, size=(int(rng.integers(4, 10)), 2)), axis=0) + start
            draw.line([tuple(float(v) for v in point) for point in steps], fill=colour, width=1)


# ---------------------------------------------------------------- shapes
def _regular_polygon(sides: int, rotation: float) -> np.ndarray:
    angles = rotation + np.arange(sides) * 2 * math.pi / sides
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star(rotation: float, inner: float) -> np.ndarray:
    angles = rotation + np.arange(10) * math.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, 1.0, inner)
    return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)


def _cross(rotation: float, arm: float) -> np.ndarray:
    outline = np.array(
        [[-arm, -1], [arm, -1], [arm, -arm], [1, -arm], [1, arm], [arm, arm],
         [arm, 1], [-arm, 1], [-arm, arm], [-1, arm], [-1, -arm], [-arm, -arm]]  # fmt: skip
    )
    cosine, sine = math.cos(rotation), math.sin(rotation)
    return outline @ np.array([[cosine, sine], [-sine, cosine]])


def _shape_mask(rng: np.random.Generator, shape: str, size: tuple[int, int], extent: float) -> tuple[Image.Image, int, int]:
    """A binary mask (mode "L") of one shape, placed at random, and its top-left offset."""
    height, width = size
    stretch = rng.uniform(0.75, 1.33)
    half_x, half_y = extent / 2 * math.sqrt(stretch), extent / 2 / math.sqrt(stretch)
    rotation = float(rng.uniform(0, 2 * math.pi))
    margin = int(math.ceil(max(half_x, half_y) * 1.5)) + 2
    mask = Image.new("L", (2 * margin, 2 * margin), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "circle":
        draw.ellipse([margin - half_x, margin - half_y, margin + half_x, margin + half_y], fill=255)
    else:
        if shape == "square":
            unit = _regular_polygon(4, rotation)
        elif shape == "triangle":
            unit = _regular_polygon(3, rotation)
        elif shape == "star":
            unit = _star(rotation, inner=float(rng.uniform(0.38, 0.5)))
        else:
            unit = _cross(rotation, arm=float(rng.uniform(0.25, 0.4)))
        points = unit * np.array([half_x, half_y]) + margin
        draw.polygon([tuple(float(value) for value in point) for point in points], fill=255)
    left = int(rng.integers(-margin // 2, max(width - margin - margin // 2, 1 - margin // 2) + 1))
    top = int(rng.integers(-margin // 2, max(height - margin - margin // 2, 1 - margin // 2) + 1))
    return mask, left, top


def _contrasting_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A colour far enough from the background under the object to be seen."""
    reference = background.reshape(-1, 3).mean(axis=0)
    best, best_distance = None, -1.0
    for _ in range(20):
        colour = rng.integers(0, 256, size=3).astype(np.float32)
        distance = float(np.linalg.norm(colour - reference))
        if distance > 110:
            return colour
        if distance > best_distance:
            best, best_distance = colour, distance
    return best


def _box_iou(first: list[float], second: list[float]) -> float:
    width = max(0.0, min(first[2], second[2]) - max(first[0], second[0]))
    height = max(0.0, min(first[3], second[3]) - max(first[1], second[1]))
    overlap = width * height
    union = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1])
    return overlap / max(union - overlap, 1e-9)


def _mask_box(mask: np.ndarray) -> list[float] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return [float(columns[0]), float(rows[0]), float(columns[-1] + 1), float(rows[-1] + 1)]


def generate_image(seed: int, index: int, spec: SyntheticSpec = SyntheticSpec()) -> SyntheticImage:
    """Image `index` of the data set with this `seed`."""
    rng = _image_rng(seed, index)
    height, width = spec.image_size
    pixels = _background(rng, height, width)
    canvas = Image.fromarray(pixels)
    _clutter(rng, canvas, spec.clutter)
    pixels = np.asarray(canvas).astype(np.float32)

    wanted = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    instance_ids = np.zeros((height, width), dtype=np.int32)
    full_areas: list[int] = []
    classes: list[int] = []
    placed_boxes: list[list[float]] = []
    for _ in range(wanted * 6):
        if len(classes) == wanted:
            break
        class_index = int(rng.integers(len(SHAPE_CLASSES)))
        extent = float(np.exp(rng.uniform(math.log(spec.min_object_size), math.log(spec.max_object_size))))
        shape_image, left, top = _shape_mask(rng, SHAPE_CLASSES[class_index], (height, width), extent)
        full = np.zeros((height, width), dtype=bool)
        source = np.asarray(shape_image) > 127
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + source.shape[0], height), min(left + source.shape[1], width)
        if y1 <= y0 or x1 <= x0:
            continue
        full[y0:y1, x0:x1] = source[y0 - top : y1 - top, x0 - left : x1 - left]
        own_area = int(full.sum())
        whole_area = int(source.sum())
        # Mostly inside the image, and not hiding too much of anything already there.
        if own_area < 0.8 * whole_area or own_area < 40:
            continue
        box = _mask_box(full)
        if any(_box_iou(box, other) > spec.max_overlap_iou for other in placed_boxes):
            continue
        trial = instance_ids.copy()
        trial[full] = len(classes) + 1
        if any(
            (trial == number).sum() < spec.min_visible_fraction * full_areas[number - 1]
            for number in range(1, len(classes) + 1)
        ):
            continue
        instance_ids = trial
        full_areas.append(own_area)
        classes.append(class_index)
        placed_boxes.append(box)
        colour = _contrasting_colour(rng, pixels[full])
        shading = rng.normal(0, rng.uniform(0, 12), size=(height, width, 1)).astype(np.float32)
        pixels[full] = np.clip(colour[None, :] + shading[full], 0, 255)

    result = SyntheticImage(image=Image.fromarray(pixels.astype(np.uint8)))
    for number, class_index in enumerate(classes, start=1):
        visible = instance_ids == number
        box = _mask_box(visible)
        if box is None:
            continue
        result.boxes.append(box)
        result.classes.append(class_index)
        result.areas.append(int(visible.sum()))
        result.masks.append(visible)
    if rng.random() < 0.3:
        # Slight blur on some images, as from a soft camera.
        result.image = result.image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 0.8))))
    return result


def coco_categories() -> list[dict]:
    """COCO `categories` of the synthetic classes (ids from 1)."""
    return [{"id": index + 1, "name": name, "supercategory": "shape"} for index, name in enumerate(SHAPE_CLASSES)]


def write_dataset(
    output_dir: str | os.PathLike,
    num_images: int,
    seed: int,
    spec: SyntheticSpec = SyntheticSpec(),
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write `num_images` images to `output_dir/images/` and their COCO annotations to `output_dir/annotations.json`.

    The folder is built next to its destination and moved into place when complete, so an interrupted run
    leaves no half-written data set behind.

    Args:
        output_dir: Destination folder; it must not exist unless `overwrite`.
        num_images: How many images.
        seed: Seed of the data set.
        spec: What the images look like.
        overwrite: Replace an existing `output_dir`.
        progress: Called with the number of images written so far.
    """
    if num_images < 1:
        raise FasterRCNNHubError(f"--num-images must be at least 1, got {num_images}.")
    output = Path(output_dir)
    if output.exists() and not overwrite:
        raise FasterRCNNHubError(f"{output} already exists; pass --overwrite to replace it.")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    try:
        (staging / "images").mkdir()
        images, annotations = [], []
        for index in range(num_images):
            sample = generate_image(seed, index, spec)
            file_name = f"{index:06d}.png"
            sample.image.save(staging / "images" / file_name)
            images.append({"id": index + 1, "file_name": file_name, "height": spec.image_size[0],
                           "width": spec.image_size[1]})  # fmt: skip
            for box, class_index, area, mask in zip(sample.boxes, sample.classes, sample.areas, sample.masks):
                annotations.append({
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": class_index + 1,
                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                    "area": area,
                    "segmentation": mask_to_rle(mask),
                    "iscrowd": 0,
                })  # fmt: skip
            if progress is not None:
                progress(index + 1)
        coco = {
            "info": {"description": f"faster-rcnn-hub synthetic shapes, seed {seed}", "version": "1"},
            "images": images,
            "annotations": annotations,
            "categories": coco_categories(),
        }
        (staging / "annotations.json").write_text(json.dumps(coco), encoding="utf-8")
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output
