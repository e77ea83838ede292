"""COCO-format annotations turned into training targets in the network's input frame.

Follows mmdetection's `CocoDataset.parse_data_info` (which boxes are kept) and its `Resize` and `RandomFlip`
transforms (how boxes follow the image).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import InvalidAnnotationError


@dataclass
class ImageAnnotations:
    """The usable objects of one image: `(n, 4)` x1, y1, x2, y2 boxes in original pixels and their category ids."""

    image_id: Any
    boxes: np.ndarray
    category_ids: np.ndarray


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def parse_image_annotations(entry: Any, image_size: tuple[int, int], index: int = 0) -> ImageAnnotations:
    """Read one image's `{"image_id": ..., "annotations": [{"bbox": [x, y, w, h], "category_id": ...}, ...]}`.

    As mmdetection does, an object is dropped when it is a crowd (`iscrowd`) or marked `ignore`, when its box
    does not overlap the image, or when it is narrower or shorter than 1 pixel or has a non-positive `area`.

    Args:
        entry: The image's annotations in COCO detection format (the DETR image processor's format).
        image_size: `(height, width)` of the image, in the pixels the boxes are given in.
        index: Position of the image in the batch, for error messages.
    """
    if not isinstance(entry, Mapping) or not isinstance(entry.get("annotations"), Sequence):
        raise InvalidAnnotationError(
            f"annotations[{index}] must be a mapping with an 'annotations' list (COCO detection format: "
            "{'image_id': ..., 'annotations': [{'bbox': [x, y, w, h], 'category_id': ...}, ...]})."
        )
    height, width = image_size
    boxes, category_ids = [], []
    for number, annotation in enumerate(entry["annotations"]):
        where = f"annotations[{index}]['annotations'][{number}]"
        if not isinstance(annotation, Mapping):
            raise InvalidAnnotationError(f"{where} must be a mapping, got {type(annotation).__name__}.")
        bbox = annotation.get("bbox")
        if not isinstance(bbox, Sequence) or len(bbox) != 4 or not all(_is_number(value) for value in bbox):
            raise InvalidAnnotationError(f"{where}['bbox'] must be 4 finite numbers [x, y, width, height], got {bbox!r}.")
        category_id = annotation.get("category_id")
        if not isinstance(category_id, numbers.Integral) or isinstance(category_id, bool):
            raise InvalidAnnotationError(f"{where}['category_id'] must be an integer, got {category_id!r}.")
        if annotation.get("iscrowd", 0) or annotation.get("ignore", False):
            continue
        x, y, box_width, box_height = (float(value) for value in bbox)
        overlap_width = max(0.0, min(x + box_width, width) - max(x, 0.0))
        overlap_height = max(0.0, min(y + box_height, height) - max(y, 0.0))
        if overlap_width * overlap_height == 0 or box_width < 1 or box_height < 1:
            continue
        if "area" in annotation and _is_number(annotation["area"]) and annotation["area"] <= 0:
            continue
        boxes.append([x, y, x + box_width, y + box_height])
        category_ids.append(int(category_id))
    return ImageAnnotations(
        image_id=entry.get("image_id"),
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        category_ids=np.asarray(category_ids, dtype=np.int64),
    )


def training_target(
    annotations: ImageAnnotations,
    original_size: tuple[int, int],
    resized_size: tuple[int, int],
    flipped: bool,
    category_id_to_label: Mapping[int, int] | None,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """The model's `labels` entry for one image: boxes scaled to the resized image, clipped, flipped if asked.

    Args:
        annotations: The image's usable objects.
        original_size: `(height, width)` before resizing.
        resized_size: `(height, width)` after resizing (the network's input frame, before padding).
        flipped: Whether the resized image was flipped left to right.
        category_id_to_label: Maps COCO `category_id` to the model's class index; objects of other
            categories are dropped (as mmdetection drops categories outside its class list). `None` uses the
            `category_id` itself as the class index (the DETR processor's convention).
        device: Where to put the tensors.
    """
    original_height, original_width = original_size
    resized_height, resized_width = resized_size
    # mmdetection's per-axis scale factors, resized / original, applied as x * w_scale, y * h_scale.
    scales = np.array(
        [resized_width / original_width, resized_height / original_height] * 2, dtype=np.float32
    )
    boxes = annotations.boxes * scales
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, resized_width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, resized_height)
    if flipped:
        boxes = np.stack(
            [resized_width - boxes[:, 2], boxes[:, 1], resized_width - boxes[:, 0], boxes[:, 3]], axis=1
        ).reshape(-1, 4)
    if category_id_to_label is None:
        labels = annotations.category_ids.copy()
        keep = np.ones(len(labels), dtype=bool)
    else:
        keep = np.array([int(value) in category_id_to_label for value in annotations.category_ids], dtype=bool)
        labels = np.array(
            [category_id_to_label[int(value)] for value in annotations.category_ids[keep]], dtype=np.int64
        )
        boxes = boxes[keep]
    positive = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, labels = boxes[positive], labels[positive]
    target = {
        "class_labels": torch.as_tensor(labels, dtype=torch.long, device=device),
        "boxes": torch.as_tensor(np.ascontiguousarray(boxes), dtype=torch.float32, device=device),
        "orig_size": torch.tensor(original_size, dtype=torch.long, device=device),
        "size": torch.tensor(resized_size, dtype=torch.long, device=device),
        "flipped": flipped,
    }
    if annotations.image_id is not None:
        target["image_id"] = annotations.image_id
    return target
