"""COCO-format detection data: a `Dataset` over an annotation file and an image folder, and the collator that
turns its samples into model inputs with `labels` (for a training loop or transformers' `Trainer`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InvalidAnnotationError
from ..models.faster_rcnn.image_io import load_image, to_rgb_array
from ..models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor
from ..proposals.proposal_file import ProposalSet
from .coco_checks import check_coco_content
from .mask_targets import add_mask_targets


def read_coco_file(path: str | os.PathLike) -> dict:
    """Read a COCO detection file and check its form: `images`, `annotations` and `categories` lists with ids
    (`check_coco_content` checks what they say)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidAnnotationError(f"Annotation file not found: {path}")
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidAnnotationError(f"{path} is not a JSON file ({error}).") from error
    if not isinstance(coco, Mapping):
        raise InvalidAnnotationError(f"{path} must hold a JSON object with images, annotations and categories.")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise InvalidAnnotationError(f"{path} has no '{key}' list; is it a COCO detection file?")
    for image in coco["images"]:
        if not isinstance(image, Mapping) or "id" not in image or "file_name" not in image:
            raise InvalidAnnotationError(f"{path}: every entry of 'images' needs 'id' and 'file_name', got {image!r}.")
    for category in coco["categories"]:
        if not isinstance(category, Mapping) or "id" not in category or "name" not in category:
            raise InvalidAnnotationError(f"{path}: every category needs 'id' and 'name', got {category!r}.")
    if not coco["categories"]:
        raise InvalidAnnotationError(f"{path} defines no categories.")
    return coco


class CocoDetectionDataset(Dataset):
    """Images of a COCO detection file with their annotations, in the format the image processor takes.

    Classes are the file's categories ordered by id, unless `class_names` (the model's `id2label` order)
    says otherwise; then categories are matched to classes by name.

    Args:
        annotation_file: COCO detection JSON.
        image_dir: Folder the `file_name`s are relative to.
        class_names: Class names in the model's order; `None` uses the file's categories by id.
        skip_empty: Leave out images without any usable object (mmdetection's `filter_empty_gt`, for training).
        proposals: Proposals of every image (for a Fast R-CNN, see `ProposalSet`); each sample then carries its
            image's as `proposals`.
        require_annotations: Refuse a file without annotations (to train or evaluate; not to compute proposals).

    Raises:
        InvalidAnnotationError: Listing every problem of the file at once (`check_coco_content`), before any image
            is read: unknown categories, two categories with one name, boxes of no area, missing image files, ...
    """

    def __init__(
        self,
        annotation_file: str | os.PathLike,
        image_dir: str | os.PathLike,
        class_names: Sequence[str] | None = None,
        skip_empty: bool = False,
        proposals: ProposalSet | None = None,
        require_annotations: bool = True,
    ) -> None:
        self.annotation_file = Path(annotation_file)
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise InvalidAnnotationError(f"Image folder not found: {self.image_dir}")
        self.coco = read_coco_file(self.annotation_file)
        check_coco_content(self.coco, self.annotation_file, self.image_dir, require_annotations)
        categories = sorted(self.coco["categories"], key=lambda category: category["id"])
        if class_names is None:
            self.class_names = [str(category["name"]) for category in categories]
            self.category_id_to_label = {category["id"]: index for index, category in enumerate(categories)}
        else:
            self.class_names = list(class_names)
            by_name = {str(category["name"]): category["id"] for category in categories}
            missing = [name for name in self.class_names if name not in by_name]
            if missing and len(missing) == len(self.class_names):
                raise InvalidAnnotationError(
                    f"None of the model's classes ({', '.join(self.class_names[:8])}...) is a category of "
                    f"{self.annotation_file} ({', '.join(list(by_name)[:8])}...); check the file or the model."
                )
            self.category_id_to_label = {
                by_name[name]: index for index, name in enumerate(self.class_names) if name in by_name
            }
        self.label_to_category_id = {label: category for category, label in self.category_id_to_label.items()}
        by_image: dict[Any, list] = {image["id"]: [] for image in self.coco["images"]}
        for annotation in self.coco["annotations"]:
            by_image[annotation["image_id"]].append(annotation)
        self.images = [
            image
            for image in sorted(self.coco["images"], key=lambda image: image["id"])
            if not skip_empty or any(self._usable(annotation) for annotation in by_image[image["id"]])
        ]
        self._annotations = by_image
        self.proposals = proposals
        if proposals is not None and not proposals.covers([image["id"] for image in self.images]):
            missing = [image["id"] for image in self.images if not proposals.covers([image["id"]])]
            raise InvalidAnnotationError(
                f"The proposals ({proposals.method or 'proposal file'}) lack {len(missing)} of the "
                f"{len(self.images)} images of {self.annotation_file} (image ids {missing[:5]}...); make them for "
                "this data set."
            )

    def _usable(self, annotation: Mapping) -> bool:
        bbox = annotation.get("bbox") or [0, 0, 0, 0]
        return (
            annotation.get("category_id") in self.category_id_to_label
            and not annotation.get("iscrowd", 0)
            and len(bbox) == 4
            and bbox[2] >= 1
            and bbox[3] >= 1
        )

    def annotations_without_segmentation(self) -> list[Any]:
        """Ids of the annotations a training step would use (see `skip_empty`'s rule) that have no
        `segmentation`: a Mask R-CNN cannot train on them."""
        return [
            annotation.get("id", "?")
            for image in self.images
            for annotation in self._annotations[image["id"]]
            if self._usable(annotation) and not annotation.get("segmentation")
        ]

    def __len__(self) -> int:
        return len(self.images)

    def image_path(self, index: int) -> Path:
        return self.image_dir / self.images[index]["file_name"]

    def __getitem__(self, index: int) -> dict[str, Any]:
        """`{"image": (H, W, 3) uint8 RGB array, "annotations": {"image_id": ..., "annotations": [...]}}`, and
        `"proposals"` (`(n, 4)` boxes in original pixels) when the data set has proposals."""
        info = self.images[index]
        image = to_rgb_array(load_image(self.image_path(index)))
        sample = {
            "image": image,
            "annotations": {"image_id": info["id"], "annotations": self._annotations[info["id"]]},
        }
        if self.proposals is not None:
            sample["proposals"] = self.proposals.for_image(info["id"])
        return sample


class DetectionDataCollator:
    """Batches `CocoDetectionDataset` samples into model inputs: `pixel_values`, `image_sizes`,
    `original_sizes` and `labels` (and `proposals`, scaled and flipped with the images, when samples have them).
    With `with_masks`, each `labels` entry also has `masks`: `(n, H, W)` uint8, the objects' segmentations in the
    resized, flipped and padded input frame (see `mask_targets`).

    Pass it as `data_collator` to transformers' `Trainer` (with `remove_unused_columns=False`).

    Args:
        processor: The model's image processor.
        category_id_to_label: The data set's mapping from COCO category id to class index.
        random_flip_probability: Flip probability for these batches (0 for evaluation); `None` keeps the
            processor's.
        generator: Random generator of the flips.
        with_masks: Add the objects' instance masks to the labels (every object then needs a `segmentation`).
            Off, nothing is decoded: box-only training does no extra work.
    """

    def __init__(
        self,
        processor: FasterRCNNImageProcessor,
        category_id_to_label: Mapping[int, int] | None = None,
        random_flip_probability: float | None = None,
        generator: torch.Generator | None = None,
        with_masks: bool = False,
    ) -> None:
        self.processor = processor
        self.with_masks = with_masks
        self.category_id_to_label = dict(category_id_to_label) if category_id_to_label is not None else None
        self.random_flip_probability = random_flip_probability
        self.generator = generator

    def __call__(self, samples: Sequence[Mapping[str, Any]], generator: torch.Generator | None = None) -> Any:
        images = [np.asarray(sample["image"]) for sample in samples]
        batch = self.processor(
            images=images,
            annotations=[sample["annotations"] for sample in samples],
            category_id_to_label=self.category_id_to_label,
            random_flip_probability=self.random_flip_probability,
            generator=generator if generator is not None else self.generator,
            proposals=[sample["proposals"] for sample in samples] if "proposals" in samples[0] else None,
        )
        if self.with_masks:
            add_mask_targets(batch, [sample["annotations"] for sample in samples],
                             [image.shape[:2] for image in images], self.category_id_to_label)  # fmt: skip
        return batch
