"""Evaluation: Pascal VOC mAP against a hand-computed case, COCO AP through pycocotools."""

from __future__ import annotations

import pytest

from faster_rcnn_hub.evaluation import coco_box_metrics, voc_mean_average_precision
from faster_rcnn_hub.evaluation.voc_map import average_precision

GROUND_TRUTH = {
    "images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 10]},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [20, 20, 10, 10]},
        {"id": 4, "image_id": 2, "category_id": 2, "bbox": [0, 0, 20, 20]},
        {"id": 5, "image_id": 2, "category_id": 2, "bbox": [60, 60, 20, 20], "iscrowd": 1},
    ],
}


def test_voc_map_matches_a_hand_computed_case():
    results = [
        # Class a, by score: TP (img1 obj1), FP (duplicate of obj1), FP (nothing there), TP (img2 obj3).
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [1, 0, 10, 10], "score": 0.8},
        {"image_id": 2, "category_id": 1, "bbox": [70, 0, 10, 10], "score": 0.7},
        {"image_id": 2, "category_id": 1, "bbox": [21, 20, 10, 10], "score": 0.6},
        # Class b: a detection on the crowd box counts neither way; then a TP.
        {"image_id": 2, "category_id": 2, "bbox": [60, 60, 20, 20], "score": 0.95},
        {"image_id": 2, "category_id": 2, "bbox": [0, 0, 20, 19], "score": 0.5},
    ]
    # Class a: precision/recall after each detection: (1, 1/3), (1/2, 1/3), (1/3, 1/3), (1/2, 2/3); obj2 never
    # found. All-point AP = 1/3 * 1 + 1/3 * 1/2 = 0.5. Class b: one object, found first: AP 1.
    outcome = voc_mean_average_precision(GROUND_TRUTH, results)
    assert outcome["per_class"] == {1: pytest.approx(0.5), 2: pytest.approx(1.0)}
    assert outcome["mAP"] == pytest.approx(0.75)
    # VOC 2007's 11 points for class a: recall thresholds 0..0.3 -> 1, 0.4..0.6 -> 0.5, 0.7..1 -> 0.
    eleven = voc_mean_average_precision(GROUND_TRUTH, results, mode="11points")
    assert eleven["per_class"][1] == pytest.approx((4 * 1 + 3 * 0.5) / 11)


def test_average_precision_takes_the_precision_envelope():
    import numpy as np

    assert average_precision(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == pytest.approx(1.0)
    # A dip in precision is lifted to the best precision at any higher recall.
    assert average_precision(np.array([0.25, 0.5, 0.75]), np.array([1.0, 0.5, 0.75])) == pytest.approx(0.25 + 0.5 * 0.75)
    with pytest.raises(ValueError, match="mode"):
        average_precision(np.array([1.0]), np.array([1.0]), mode="101points")


def test_coco_metrics_of_perfect_and_of_no_detections():
    perfect = [
        {"image_id": annotation["image_id"], "category_id": annotation["category_id"], "bbox": annotation["bbox"],
         "score": 1.0}
        for annotation in GROUND_TRUTH["annotations"] if not annotation.get("iscrowd")
    ]  # fmt: skip
    metrics = coco_box_metrics(GROUND_TRUTH, perfect)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP50"] == pytest.approx(1.0)
    assert "Average Precision" in metrics["summary"]
    assert coco_box_metrics(GROUND_TRUTH, [])["AP"] == 0.0
    shifted = [dict(result, bbox=[result["bbox"][0] + 2.5, *result["bbox"][1:]]) for result in perfect]
    partial = coco_box_metrics(GROUND_TRUTH, shifted)
    assert partial["AP50"] == pytest.approx(1.0) and partial["AP"] < 0.8
    assert GROUND_TRUTH["annotations"][0].get("area") is None  # the caller's data is not modified
