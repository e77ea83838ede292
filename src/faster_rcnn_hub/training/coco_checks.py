"""Checking the content of a COCO detection file before any work: every problem is found at once and reported
in one error, instead of annotations being dropped without a word (AP moves), or a run stopping on a missing
image after hours of detecting or training."""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..data.coco_masks import segmentation_problems
from ..errors import InvalidAnnotationError

# Problems listed in the error; the rest are counted.
MAX_LISTED = 20


def check_coco_content(
    coco: Mapping[str, Any], path: Path, image_dir: Path, require_annotations: bool = True
) -> None:
    """Raise one `InvalidAnnotationError` listing every problem of a COCO detection file (the first
    `MAX_LISTED`, and how many more): two categories with one id or one name, two images with one id, an image
    file missing from `image_dir`, an annotation of no image or of no category, a box that is not 4 finite
    numbers or whose width or height is not positive, and (with `require_annotations`) no annotation at all.

    Args:
        coco: The file's content, with `images`, `annotations` and `categories` lists (`read_coco_file`).
        path: The file, for the message.
        image_dir: The folder the images' `file_name`s are relative to.
        require_annotations: Whether a file without annotations is a problem (it is to train or evaluate).
    """
    problems = [
        *_duplicates(coco["categories"], "id", "categories"),
        *_duplicates(coco["categories"], "name", "categories"),
        *_duplicates(coco["images"], "id", "images"),
        *_missing_image_files(coco["images"], image_dir),
        *_annotation_problems(coco),
    ]
    if require_annotations and not coco["annotations"]:
        problems.append("the 'annotations' list is empty: there is nothing to train on or to evaluate against")
    if problems:
        # One line (the command line's errors are one line each), however many problems.
        listed = "; ".join(problems[:MAX_LISTED])
        more = f"; and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise InvalidAnnotationError(
            f"{path} has {len(problems)} problem(s), so nothing was done; fix them and run again: {listed}{more}."
        )


def _duplicates(entries: list[Mapping[str, Any]], key: str, section: str) -> list[str]:
    counts = Counter(str(entry[key]) for entry in entries)
    return [f"{count} {section} have the {key} {value!r}" for value, count in counts.items() if count > 1]


def _missing_image_files(images: list[Mapping[str, Any]], image_dir: Path) -> list[str]:
    return [
        f"image {image['id']}: its file {image_dir / str(image['file_name'])} does not exist"
        for image in images
        if not (image_dir / str(image["file_name"])).is_file()
    ]


def _annotation_problems(coco: Mapping[str, Any]) -> list[str]:
    image_ids = {image["id"] for image in coco["images"]}
    image_sizes = {image["id"]: (image.get("height"), image.get("width")) for image in coco["images"]}
    category_ids = {category["id"] for category in coco["categories"]}
    problems = []
    for position, annotation in enumerate(coco["annotations"]):
        if not isinstance(annotation, Mapping):
            problems.append(f"annotation {position} is not an object: {annotation!r}")
            continue
        name = f"annotation {annotation.get('id', f'at position {position}')}"
        if annotation.get("image_id") not in image_ids:
            problems.append(f"{name}: image_id {annotation.get('image_id')!r} is no image of the file")
        if annotation.get("category_id") not in category_ids:
            problems.append(f"{name}: category_id {annotation.get('category_id')!r} is no category of the file")
        problems.extend(f"{name}: {problem}" for problem in _box_problems(annotation.get("bbox")))
        if "segmentation" in annotation:
            height, width = image_sizes.get(annotation.get("image_id"), (None, None))
            problems.extend(
                f"{name}: {problem}" for problem in segmentation_problems(annotation["segmentation"], height, width)
            )
    return problems


def _box_problems(bbox: Any) -> list[str]:
    if (
        not isinstance(bbox, (list, tuple))
        or len(bbox) != 4
        or not all(isinstance(value, numbers.Real) and not isinstance(value, bool) for value in bbox)
        or not all(math.isfinite(value) for value in bbox)
    ):
        return [f"bbox must be 4 finite numbers [x, y, width, height], got {bbox!r}"]
    return [f"bbox {list(bbox)} has a {side} of {value} (it must be positive)"
            for side, value in (("width", bbox[2]), ("height", bbox[3])) if value <= 0]  # fmt: skip
