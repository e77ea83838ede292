"""Instance masks of the synthetic set, their COCO checks, mask targets for training and mask AP."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask

from faster_rcnn_hub import FasterRCNNImageProcessor
from faster_rcnn_hub.cli import main
from faster_rcnn_hub.data.coco_masks import mask_to_rle, segmentation_problems, segmentation_to_mask
from faster_rcnn_hub.data.synthetic import SyntheticSpec, generate_image, write_dataset
from faster_rcnn_hub.errors import InvalidAnnotationError
from faster_rcnn_hub.evaluation import coco_box_metrics, coco_mask_metrics
from faster_rcnn_hub.training.data import CocoDetectionDataset, DetectionDataCollator

FIXTURES = Path(__file__).parent / "fixtures"
SPEC = SyntheticSpec(image_size=(96, 128))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("masks") / "shapes", 6, seed=4, spec=SPEC)


def test_images_and_boxes_of_a_seed_are_those_of_main():
    # The default model's recipe and figures rest on these images: adding masks must not change a pixel or a box.
    reference = json.loads((FIXTURES / "synthetic_reference.json").read_text())
    for case in reference["cases"]:
        sample = generate_image(case["seed"], case["index"], SyntheticSpec(image_size=tuple(case["image_size"])))
        assert hashlib.sha256(sample.image.tobytes()).hexdigest() == case["image_sha256"]
        assert (sample.boxes, sample.classes, sample.areas) == (case["boxes"], case["classes"], case["areas"])


def test_every_annotation_carries_its_visible_pixels_as_rle(shapes):
    coco = json.loads((shapes / "annotations.json").read_text())
    by_image: dict[int, list] = {}
    for annotation in coco["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    for image in coco["images"]:
        sample = generate_image(4, image["id"] - 1, SPEC)
        annotations = by_image.get(image["id"], [])
        masks = [segmentation_to_mask(annotation["segmentation"], 96, 128) for annotation in annotations]
        assert len(masks) == len(sample.masks)
        for annotation, mask, drawn in zip(annotations, masks, sample.masks):
            assert np.array_equal(mask, drawn)
            rows, columns = np.nonzero(mask)
            x, y = int(columns.min()), int(rows.min())
            assert annotation["bbox"] == [x, y, int(columns.max()) + 1 - x, int(rows.max()) + 1 - y]
            assert annotation["area"] == int(mask.sum()) == int(coco_mask.area(annotation["segmentation"]))
        if masks:
            # Visible pixels only: a pixel covered by a later shape belongs to that shape alone.
            assert int(np.sum(masks, axis=0).max()) == 1
    assert coco["annotations"]


def test_rle_round_trip_and_polygons_decode_as_pycocotools():
    mask = np.zeros((7, 9), dtype=np.uint8)
    mask[1:5, 2:8] = 1
    mask[3, 4] = 0
    rle = mask_to_rle(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [7, 9]
    assert np.array_equal(segmentation_to_mask(rle, 7, 9), mask)
    uncompressed = {"size": [7, 9], "counts": [int(value) for value in _runs(mask)]}
    assert np.array_equal(segmentation_to_mask(uncompressed, 7, 9), mask)
    polygon = [[1.0, 1.0, 6.0, 1.0, 6.0, 4.0, 1.0, 4.0]]
    expected = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(polygon, 7, 9)))
    assert np.array_equal(segmentation_to_mask(polygon, 7, 9), expected) and expected.sum() > 0
    assert segmentation_problems(rle, 7, 9) == segmentation_problems(uncompressed) == []
    assert segmentation_problems(polygon) == []


def _runs(mask):
    """Run lengths of a mask in COCO's column-major order, starting with zeros."""
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return np.diff(np.concatenate([[0], changes]))


@pytest.mark.parametrize(
    "segmentation, message",
    [
        ([[1, 2, 3, 4]], "at least 6 numbers"),
        ([[1, 2, 3, 4, 5, float("nan")]], "finite numbers"),
        ({"size": [96, 128], "counts": [5, 5]}, "covers 10 pixels"),
        ({"size": [50, 50], "counts": [2500]}, "is not the image's [height, width] [96, 128]"),
        ({"size": [96, 128], "counts": "a"}, "compressed RLE text"),  # ends inside a number
        ({"size": [96, 128], "counts": 3}, "run lengths"),
        ({"counts": [12288]}, "'size' must be [height, width]"),
        ("mask", "polygons"),
    ],
)
def test_malformed_segmentations_are_refused_with_the_other_problems(shapes, tmp_path, segmentation, message):
    coco = json.loads((shapes / "annotations.json").read_text())
    coco["annotations"][0]["segmentation"] = segmentation
    coco["annotations"][1]["bbox"] = [0, 0, -1, 4]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(coco))
    with pytest.raises(InvalidAnnotationError) as error:
        CocoDetectionDataset(path, shapes / "images")
    assert "2 problem(s)" in str(error.value) and message in str(error.value)
    assert f"annotation {coco['annotations'][0]['id']}: segmentation" in str(error.value)


def test_polygon_and_empty_segmentations_are_accepted(shapes, tmp_path):
    coco = json.loads((shapes / "annotations.json").read_text())
    coco["annotations"][0]["segmentation"] = [[1, 1, 20, 1, 20, 20, 1, 20]]
    coco["annotations"][1]["segmentation"] = []  # box-only files often write this: no mask, no problem
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(coco))
    assert len(CocoDetectionDataset(path, shapes / "images")) == 6


def _collate(dataset, flip, with_masks=True):
    processor = FasterRCNNImageProcessor(size={"longest_edge": 200, "shortest_edge": 150}, pad_size_divisor=32)
    collator = DetectionDataCollator(processor, dataset.category_id_to_label, random_flip_probability=float(flip),
                                     with_masks=with_masks)  # fmt: skip
    return collator([dataset[0], dataset[1]], generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("flip", [False, True])
def test_masks_follow_the_image_into_the_input_frame(shapes, tmp_path, flip):
    coco = json.loads((shapes / "annotations.json").read_text())
    # A crowd object is dropped from the boxes: its mask must go with it, and the rest stay aligned.
    first_image = [annotation for annotation in coco["annotations"] if annotation["image_id"] == 1]
    first_image[0]["iscrowd"] = 1
    path = tmp_path / "crowd.json"
    path.write_text(json.dumps(coco))
    dataset = CocoDetectionDataset(path, shapes / "images")
    batch = _collate(dataset, flip)
    canvas = tuple(batch["pixel_values"].shape[-2:])
    for position, target in enumerate(batch["labels"]):
        assert target["flipped"] is flip
        kept = [annotation for annotation in dataset[position]["annotations"]["annotations"]
                if not annotation.get("iscrowd")]  # fmt: skip
        masks = target["masks"]
        assert masks.dtype == torch.uint8 and len(kept) == len(target["boxes"])
        assert tuple(masks.shape) == (len(kept), *canvas)
        height, width = (int(side) for side in target["size"])
        for annotation, mask, box in zip(kept, masks.numpy(), target["boxes"]):
            expected = cv2.resize(segmentation_to_mask(annotation["segmentation"], 96, 128), (width, height),
                                  interpolation=cv2.INTER_NEAREST)  # fmt: skip
            expected = expected[:, ::-1] if flip else expected
            assert np.array_equal(mask[:height, :width], expected)
            assert not mask[height:].any() and not mask[:, width:].any()
            # The mask lies where its box does (nearest resize moves an edge by at most a resized pixel).
            rows, columns = np.nonzero(mask)
            found = np.array([columns.min(), rows.min(), columns.max() + 1, rows.max() + 1], dtype=np.float32)
            assert np.abs(found - box.numpy()).max() <= 2.0


def test_masks_only_when_asked_and_every_object_needs_one(shapes, tmp_path):
    dataset = CocoDetectionDataset(shapes / "annotations.json", shapes / "images")
    assert all("masks" not in target for target in _collate(dataset, False, with_masks=False)["labels"])
    coco = json.loads((shapes / "annotations.json").read_text())
    del coco["annotations"][0]["segmentation"]
    path = tmp_path / "no-mask.json"
    path.write_text(json.dumps(coco))
    dataset = CocoDetectionDataset(path, shapes / "images")
    with pytest.raises(InvalidAnnotationError, match="has no segmentation, and masks were asked for"):
        _collate(dataset, False)


def _ground_truth_results(coco, as_arrays, uncompressed=False):
    results = []
    for annotation in coco["annotations"]:
        mask = segmentation_to_mask(annotation["segmentation"], 96, 128)
        segmentation = torch.from_numpy(mask) if as_arrays else annotation["segmentation"]
        if uncompressed:
            segmentation = {"size": [96, 128], "counts": [int(run) for run in _runs(mask)]}
        results.append({"image_id": annotation["image_id"], "category_id": annotation["category_id"],
                        "bbox": annotation["bbox"], "score": 0.9, "segmentation": segmentation})  # fmt: skip
    return results


@pytest.mark.parametrize("as_arrays", [False, True])
def test_mask_ap_of_ground_truth_masks_and_of_spoilt_ones(shapes, as_arrays):
    coco = json.loads((shapes / "annotations.json").read_text())
    results = _ground_truth_results(coco, as_arrays)
    assert coco_mask_metrics(coco, results)["AP"] == pytest.approx(1.0)
    if not as_arrays:  # run-length lists too
        uncompressed = _ground_truth_results(coco, False, uncompressed=True)
        assert coco_mask_metrics(coco, uncompressed)["AP"] == pytest.approx(1.0)
    # The same boxes with masks shrunk to their top-left quarter: box AP stays perfect, mask AP falls.
    for result in results:
        mask = segmentation_to_mask(mask_to_rle(np.asarray(result["segmentation"])) if as_arrays
                                    else result["segmentation"], 96, 128)  # fmt: skip
        x, y, width, height = (int(value) for value in result["bbox"])
        spoilt = np.zeros_like(mask)
        spoilt[y : y + height // 2, x : x + width // 2] = mask[y : y + height // 2, x : x + width // 2]
        result["segmentation"] = spoilt if as_arrays else mask_to_rle(spoilt)
    assert coco_box_metrics(coco, [{key: value for key, value in result.items() if key != "segmentation"}
                                   for result in results])["AP"] == pytest.approx(1.0)  # fmt: skip
    assert coco_mask_metrics(coco, results)["AP"] < 0.2


def test_evaluate_reports_mask_ap_when_results_carry_masks(shapes, tmp_path, monkeypatch, capsys):
    from faster_rcnn_hub.cli import training_commands

    dataset = CocoDetectionDataset(shapes / "annotations.json", shapes / "images")
    results = _ground_truth_results(dataset.coco, as_arrays=True)
    monkeypatch.setattr(training_commands, "_evaluate_torch", lambda args: (dataset, results))
    metrics, detections = tmp_path / "metrics.json", tmp_path / "results.json"
    assert main(["evaluate", "--annotations", str(shapes / "annotations.json"), "--images", str(shapes / "images"),
                 "--metrics-json", str(metrics), "--results-json", str(detections)]) == 0  # fmt: skip
    assert "COCO mask AP: AP 1.0000" in capsys.readouterr().out
    written = json.loads(metrics.read_text())
    assert written["segm_AP"] == pytest.approx(1.0) and written["AP"] == pytest.approx(1.0)
    saved = json.loads(detections.read_text())
    assert np.array_equal(segmentation_to_mask(saved[0]["segmentation"], 96, 128), results[0]["segmentation"].numpy())
    # evaluate recognises the results it wrote, masks and all, and replaces them when asked.
    assert main(["evaluate", "--annotations", str(shapes / "annotations.json"), "--images", str(shapes / "images"),
                 "--results-json", str(detections), "--overwrite"]) == 0  # fmt: skip
