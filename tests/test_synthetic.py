"""The synthetic shapes data set: deterministic by seed, exact annotations, COCO format, CLI."""

from __future__ import annotations

import json

import numpy as np

from faster_rcnn_hub.cli import main
from faster_rcnn_hub.data.synthetic import SHAPE_CLASSES, SyntheticSpec, generate_image
from faster_rcnn_hub.training.data import CocoDetectionDataset

SPEC = SyntheticSpec(image_size=(128, 160))


def test_images_depend_only_on_seed_and_index():
    first, again, other = generate_image(5, 2, SPEC), generate_image(5, 2, SPEC), generate_image(6, 2, SPEC)
    assert first.image.tobytes() == again.image.tobytes() and first.boxes == again.boxes
    assert first.image.tobytes() != other.image.tobytes()
    assert first.image.size == (160, 128)


def test_objects_are_varied_and_their_boxes_are_tight_and_inside():
    samples = [generate_image(0, index, SPEC) for index in range(30)]
    classes = [label for sample in samples for label in sample.classes]
    assert set(classes) == set(range(len(SHAPE_CLASSES)))
    widths = [box[2] - box[0] for sample in samples for box in sample.boxes]
    assert min(widths) < 30 and max(widths) > 60
    for sample in samples:
        assert SPEC.min_objects <= len(sample.boxes) <= SPEC.max_objects
        for box, area in zip(sample.boxes, sample.areas):
            assert 0 <= box[0] < box[2] <= 160 and 0 <= box[1] < box[3] <= 128
            assert 0 < area <= (box[2] - box[0]) * (box[3] - box[1])
    # Some objects overlap (their boxes intersect).
    assert any(
        min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])
        for sample in samples for i, a in enumerate(sample.boxes) for b in sample.boxes[i + 1 :]
    )  # fmt: skip


def test_synth_command_writes_a_coco_data_set(tmp_path, capsys):
    output = tmp_path / "shapes"
    assert main(["synth", "--num-images", "4", "--seed", "3", "--output", str(output), "--image-size", "96"]) == 0
    coco = json.loads((output / "annotations.json").read_text())
    assert [category["name"] for category in coco["categories"]] == list(SHAPE_CLASSES)
    assert len(coco["images"]) == 4 and len(list((output / "images").glob("*.png"))) == 4
    dataset = CocoDetectionDataset(output / "annotations.json", output / "images")
    sample = dataset[0]
    assert sample["image"].shape == (96, 96, 3) and sample["image"].dtype == np.uint8
    assert dataset.class_names == list(SHAPE_CLASSES)
    # Refuses to overwrite without --overwrite, and leaves the data set intact.
    assert main(["synth", "--num-images", "2", "--output", str(output)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert len(json.loads((output / "annotations.json").read_text())["images"]) == 4
