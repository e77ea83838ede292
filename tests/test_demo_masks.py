"""The demo with a Mask R-CNN: its masks drawn under the boxes, in the JSON report, kept through the cache; its
last stage does not re-run with other NMS settings (the masks belong to its own)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import IMAGES
from PIL import Image, ImageFilter

from faster_rcnn_hub.demo import DetectionRunner, ModelCatalogue
from faster_rcnn_hub.demo.analysis import annotate_for_display, display_scale
from faster_rcnn_hub.demo.last_stage import LastStageSettings
from faster_rcnn_hub.detection import Detection, InstanceMask
from faster_rcnn_hub.errors import FasterRCNNHubError

MASK_CASE = "tiny_mask_r50_fpn_coco"
THRESHOLD = 0.05


@pytest.fixture(scope="module")
def mask_demo(converted_model):
    catalogue = ModelCatalogue({"masks": converted_model(MASK_CASE)}, device="cpu")
    return catalogue, DetectionRunner(catalogue)


def test_runner_gives_the_detectors_masks_in_the_report_and_through_the_cache(mask_demo):
    catalogue, runner = mask_demo
    image = IMAGES / "chelsea.png"
    first = runner(image, "masks", threshold=THRESHOLD)
    again = runner(image, "masks", threshold=0.3)
    expected = catalogue.detector("masks")(image, threshold=THRESHOLD)
    assert expected and all(detection.mask is not None for detection in expected)
    assert [d.to_dict() for d in first.detections] == [d.to_dict() for d in expected]
    assert first.report()["detections"] == [d.to_dict() for d in expected]
    assert all(set(item["mask"]) == {"size", "counts"} for item in first.report()["detections"])
    assert again.cached and [d.to_dict() for d in again.detections] == [d.to_dict() for d in expected if d.score > 0.3]
    assert "with masks" in first.summary()


def test_masks_are_drawn_under_the_boxes_at_the_displayed_size():
    image = Image.open(IMAGES / "chelsea.png").convert("RGB")
    rows, columns = np.ogrid[: image.height, : image.width]
    disc = (rows - 150) ** 2 + (columns - 220) ** 2 <= 60**2
    mask = InstanceMask((image.height, image.width), 90, 160, disc[90:211, 160:281])
    detection = Detection("cat", 15, 0.9, [160.0, 90.0, 281.0, 211.0], mask=mask)
    with_mask = np.asarray(annotate_for_display(image, [detection])).astype(int)
    box_only = np.asarray(annotate_for_display(image, [dataclasses.replace(detection, mask=None)])).astype(int)
    assert display_scale(image.size) != 1.0 and with_mask.shape == box_only.shape
    shown_disc = np.asarray(Image.fromarray(disc).resize(with_mask.shape[1::-1], Image.Resampling.NEAREST))
    changed = (with_mask != box_only).any(axis=2)
    # The mask tints its pixels (but those under the label, drawn over it as before), and nothing else changes.
    assert changed[shown_disc].mean() > 0.9
    near_disc = np.asarray(Image.fromarray(shown_disc).filter(ImageFilter.MaxFilter(5)))
    assert not changed[~near_disc].any()


def test_a_mask_models_last_stage_keeps_its_own_settings(mask_demo):
    catalogue, runner = mask_demo
    settings = LastStageSettings.of(catalogue.detector("masks").model)
    assert settings.has_masks and not settings.rerunnable
    with pytest.raises(FasterRCNNHubError, match="has a mask head"):
        runner(IMAGES / "chelsea.png", "masks", threshold=THRESHOLD, iou_threshold=settings.iou_threshold / 2)
