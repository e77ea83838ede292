"""Drawing a Mask R-CNN's masks: filled in the class colour, outlined, under the boxes; RLE read back as
pycocotools writes it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from faster_rcnn_hub.detection import InstanceMask, class_color, draw_detections
from faster_rcnn_hub.detection.drawing import MASK_OPACITY, draw_masks

GRAY = (100, 100, 100)


def _disc(image_size: tuple[int, int], centre: tuple[int, int], radius: int) -> np.ndarray:
    rows, columns = np.ogrid[: image_size[0], : image_size[1]]
    return (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2 <= radius**2


def test_rle_reads_back_what_pycocotools_writes():
    generator = np.random.default_rng(1)
    for _ in range(100):
        height, width = (int(value) for value in generator.integers(1, 40, size=2))
        full = generator.random((height, width)) < generator.random() * 0.3
        encoded = coco_mask.encode(np.asfortranarray(full.astype(np.uint8)))
        rle = {"size": [height, width], "counts": encoded["counts"].decode("ascii")}
        mask = InstanceMask.from_rle(rle)
        np.testing.assert_array_equal(mask.to_array(), full)
        assert mask.to_rle() == rle
        assert mask.window.size <= full.size


@pytest.mark.parametrize(
    "rle,message",
    [
        ({"size": [4, 4], "counts": "05"}, "cover 5 pixels"),
        ({"size": [4], "counts": "0"}, "COCO RLE"),
        ([1, 2], "COCO RLE"),
        ({"size": [2, 2], "counts": "~~"}, "not a character of COCO's RLE text"),
        ({"size": [2, 2], "counts": "P"}, "ends in the middle of a number"),
    ],
)
def test_a_broken_rle_is_refused_naming_the_problem(rle, message):
    with pytest.raises(ValueError, match=message):
        InstanceMask.from_rle(rle)


def test_masks_are_filled_and_outlined_under_the_boxes_and_box_models_draw_as_before():
    image = Image.new("RGB", (80, 60), GRAY)
    full = _disc((60, 80), (30, 40), 15)
    rows, columns = np.flatnonzero(full.any(axis=1)), np.flatnonzero(full.any(axis=0))
    window = full[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    mask = InstanceMask((60, 80), int(rows[0]), int(columns[0]), window)
    box = [20.0, 10.0, 60.0, 50.0]
    detection = {"label": "ball", "label_id": 3, "score": 0.9, "box": box, "mask": mask}
    drawn = np.asarray(draw_detections(image, [detection], line_width=1, font_size=11)).astype(int)
    color = np.array(class_color(3))
    blended = np.round(MASK_OPACITY * color + (1 - MASK_OPACITY) * np.array(GRAY))
    np.testing.assert_allclose(drawn[30, 40], blended, atol=1)  # inside the mask: tinted
    np.testing.assert_array_equal(drawn[30, 25], color)  # the mask's edge: outlined
    np.testing.assert_array_equal(drawn[48, 22], GRAY)  # inside the box, outside the mask: untouched
    np.testing.assert_array_equal(drawn[30, 20], color)  # the box's outline is drawn over the mask
    # The RLE form (what detect --json writes) draws the same picture.
    from_rle = draw_detections(image, [{**detection, "mask": mask.to_rle()}], line_width=1, font_size=11)
    np.testing.assert_array_equal(np.asarray(from_rle), drawn)
    # Without a mask, the picture is the box model's.
    without = np.asarray(draw_detections(image, [{**detection, "mask": None}], line_width=1, font_size=11))
    np.testing.assert_array_equal(without[30, 40], GRAY)
    assert np.asarray(draw_masks(image, [{**detection, "mask": None}])).tolist() == np.asarray(image).tolist()


def test_a_mask_of_another_image_size_is_refused():
    mask = InstanceMask((30, 40), 0, 0, np.ones((2, 2), dtype=bool))
    detection = {"label": "ball", "label_id": 3, "score": 0.9, "box": [0, 0, 2, 2], "mask": mask}
    with pytest.raises(ValueError, match="40x30 pixels cannot be drawn on a 80x60 image"):
        draw_detections(Image.new("RGB", (80, 60)), [detection])
