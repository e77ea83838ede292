"""COCO annotations through the image processor: labels in the resized frame, filtering, flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faster_rcnn_hub import FasterRCNNImageProcessor
from faster_rcnn_hub.errors import InvalidAnnotationError, InvalidConfigError


def _image(height=100, width=200):
    return np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


ANNOTATIONS = {
    "image_id": 7,
    "annotations": [
        {"bbox": [10, 20, 50, 30], "category_id": 3},
        {"bbox": [150, 50, 80, 80], "category_id": 5},  # runs past the right edge: clipped
        {"bbox": [0, 0, 40, 40], "category_id": 3, "iscrowd": 1},  # crowd: dropped
        {"bbox": [5, 5, 0.5, 10], "category_id": 3},  # narrower than 1 pixel: dropped
        {"bbox": [300, 300, 10, 10], "category_id": 3},  # outside the image: dropped
    ],
}


def test_boxes_are_scaled_to_the_resized_image_and_filtered_as_mmdetection_does():
    processor = FasterRCNNImageProcessor(size={"longest_edge": 400, "shortest_edge": 150})
    batch = processor(images=_image(), annotations=[ANNOTATIONS])
    assert batch["image_sizes"].tolist() == [[150, 300]]
    target = batch["labels"][0]
    assert target["class_labels"].tolist() == [3, 5]  # the category id itself without a mapping (as DETR)
    expected = torch.tensor([[15.0, 30.0, 90.0, 75.0], [225.0, 75.0, 300.0, 150.0]])
    assert torch.allclose(target["boxes"], expected)
    assert target["image_id"] == 7 and target["size"].tolist() == [150, 300] and target["orig_size"].tolist() == [100, 200]
    assert target["flipped"] is False


def test_category_mapping_and_unknown_categories():
    processor = FasterRCNNImageProcessor(do_resize=False)
    batch = processor(images=_image(), annotations=ANNOTATIONS, category_id_to_label={5: 0})
    assert batch["labels"][0]["class_labels"].tolist() == [0]
    assert batch["labels"][0]["boxes"].tolist() == [[150.0, 50.0, 200.0, 100.0]]


def test_flips_mirror_pixels_and_boxes_and_are_repeatable():
    image = _image(64, 96)
    processor = FasterRCNNImageProcessor(do_resize=False, do_pad=False, random_flip_probability=1.0)
    annotations = {"image_id": 1, "annotations": [{"bbox": [10, 5, 20, 30], "category_id": 0}]}
    flipped = processor(images=image, annotations=annotations)
    plain = processor(images=image, annotations=annotations, random_flip_probability=0.0)
    assert flipped["labels"][0]["flipped"] and not plain["labels"][0]["flipped"]
    assert torch.equal(flipped["pixel_values"], plain["pixel_values"].flip(-1))
    assert flipped["labels"][0]["boxes"].tolist() == [[96.0 - 30.0, 5.0, 96.0 - 10.0, 35.0]]
    # Without annotations (inference), a processor never flips.
    assert torch.equal(processor(images=image)["pixel_values"], plain["pixel_values"])

    half = FasterRCNNImageProcessor(do_resize=False, random_flip_probability=0.5)
    draws = [
        [target["flipped"] for target in half(images=[image] * 8, annotations=[annotations] * 8,
                                              generator=torch.Generator().manual_seed(seed))["labels"]]
        for seed in (3, 3, 4)
    ]  # fmt: skip
    assert draws[0] == draws[1] and draws[0] != draws[2] and 0 < sum(draws[0]) < 8


def test_processor_with_a_flip_probability_saves_and_loads_it(tmp_path):
    FasterRCNNImageProcessor(random_flip_probability=0.5).save_pretrained(tmp_path)
    assert FasterRCNNImageProcessor.from_pretrained(tmp_path).random_flip_probability == 0.5
    with pytest.raises(InvalidConfigError, match="random_flip_probability"):
        FasterRCNNImageProcessor(random_flip_probability=1.5)


@pytest.mark.parametrize(
    "annotations,message",
    [
        ([ANNOTATIONS, ANNOTATIONS], "one entry per image"),
        ({"image_id": 1}, "'annotations' list"),
        ({"annotations": [{"bbox": [1, 2, 3], "category_id": 1}]}, r"\[x, y, width, height\]"),
        ({"annotations": [{"bbox": [1, 2, 3, 4], "category_id": "cat"}]}, "integer"),
        ({"annotations": [{"bbox": [1, 2, 3, float("nan")], "category_id": 1}]}, "finite"),
    ],
)
def test_malformed_annotations_are_refused(annotations, message):
    with pytest.raises(InvalidAnnotationError, match=message):
        FasterRCNNImageProcessor()(images=_image(), annotations=annotations)
