"""Instance masks as training targets: each kept object's COCO `segmentation`, in the network's input frame.

As mmdetection 3.3.0 with `LoadAnnotations(with_mask=True, poly2mask=True)`: the segmentation becomes a bitmap
of the original image (polygons and RLE alike, through pycocotools), which `Resize` (keep ratio) rescales with
nearest-neighbour interpolation (`BitmapMasks.rescale`: `cv2.resize(..., INTER_NEAREST)` to the image's new
size), `RandomFlip` flips with the image, and `DetDataPreprocessor(pad_mask=True)` pads with zeros to the batch's
padded size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from ..data.coco_masks import segmentation_to_mask
from ..errors import InvalidAnnotationError
from ..models.faster_rcnn.annotations import parse_image_annotations, training_target


def kept_annotations(
    entry: Mapping[str, Any],
    original_size: tuple[int, int],
    target: Mapping[str, Any],
    category_id_to_label: Mapping[int, int] | None,
) -> list[Mapping[str, Any]]:
    """The annotations of `entry` that became `target`'s objects, in order.

    Each annotation is put through the processor's own rules (`parse_image_annotations`, `training_target`) on
    its own, so masks and boxes are dropped together whatever the rule (crowd, degenerate, unknown category, box
    outside the image).
    """
    resized_size = tuple(int(side) for side in target["size"])
    kept = []
    for annotation in entry["annotations"]:
        alone = parse_image_annotations({"annotations": [annotation]}, original_size)
        if len(training_target(alone, original_size, resized_size, bool(target["flipped"]), category_id_to_label)
               ["boxes"]):  # fmt: skip
            kept.append(annotation)
    if len(kept) != len(target["boxes"]):
        raise RuntimeError(f"{len(kept)} annotations kept for {len(target['boxes'])} boxes: the rules disagree.")
    return kept


def input_frame_masks(
    annotations: Sequence[Mapping[str, Any]],
    original_size: tuple[int, int],
    resized_size: tuple[int, int],
    flipped: bool,
    canvas_size: tuple[int, int],
) -> torch.Tensor:
    """`(n, canvas height, canvas width)` uint8 masks of `annotations` in the input frame: resized (nearest),
    flipped and zero-padded as the image.

    Raises:
        InvalidAnnotationError: An annotation has no `segmentation` (masks are asked for, so every object needs one).
    """
    original_height, original_width = original_size
    resized_height, resized_width = resized_size
    masks = np.zeros((len(annotations), *canvas_size), dtype=np.uint8)
    for number, annotation in enumerate(annotations):
        segmentation = annotation.get("segmentation")
        if segmentation is None or (isinstance(segmentation, list) and not segmentation):
            raise InvalidAnnotationError(
                f"annotation {annotation.get('id', '?')} (image {annotation.get('image_id', '?')}) has no "
                "segmentation, and masks were asked for: give every object a segmentation (polygons or RLE), or "
                "train without masks."
            )
        mask = segmentation_to_mask(segmentation, original_height, original_width)
        if (resized_height, resized_width) != (original_height, original_width):
            mask = cv2.resize(mask, (resized_width, resized_height), interpolation=cv2.INTER_NEAREST)
        if flipped:
            mask = mask[:, ::-1]
        masks[number, :resized_height, :resized_width] = mask
    return torch.from_numpy(masks)


def add_mask_targets(
    batch: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]],
    original_sizes: Sequence[tuple[int, int]],
    category_id_to_label: Mapping[int, int] | None,
) -> None:
    """Give every target of the processor's `batch` its objects' `masks` (see `input_frame_masks`), on the
    device of its boxes.

    Args:
        batch: The processor's output for `entries` (with `labels` and `pixel_values`).
        entries: The images' COCO annotations, as given to the processor.
        original_sizes: `(height, width)` of each image before resizing.
        category_id_to_label: The mapping given to the processor.
    """
    canvas_size = tuple(int(side) for side in batch["pixel_values"].shape[-2:])
    for entry, original_size, target in zip(entries, original_sizes, batch["labels"]):
        kept = kept_annotations(entry, original_size, target, category_id_to_label)
        resized_size = tuple(int(side) for side in target["size"])
        masks = input_frame_masks(kept, original_size, resized_size, bool(target["flipped"]), canvas_size)
        target["masks"] = masks.to(target["boxes"].device)
