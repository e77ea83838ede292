"""Batches of images of different sizes give each image the detections it gets alone (tests/parity.py's rule)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import pipeline

from conftest import IMAGES
from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor, InvalidImageError
from faster_rcnn_hub.detection import Detector
from faster_rcnn_hub.models.faster_rcnn.image_io import to_rgb_array
from parity import MAX_BOX_DIFFERENCE, assert_matches, compare_detections

TINY = "tiny_r50_fpn_coco"
# At this test scale the padded sizes are 416x416 (astronaut, camera), 416x608 (chelsea, coffee), 672x416 and
# 96x672: four sizes, two of them shared.
NAMES = ["astronaut.png", "camera.png", "chelsea.png", "coffee.png", "tiny_noise.png", "wide_pattern.png"]


@pytest.fixture(scope="module")
def model_dir(converted_model, tmp_path_factory) -> Path:
    """The tiny model with half mmdetection's test scale: what is tested holds at any scale, and costs less."""
    folder = Path(shutil.copytree(converted_model(TINY), tmp_path_factory.mktemp("small") / "model"))
    settings = json.loads((folder / "preprocessor_config.json").read_text())
    settings["size"] = {"longest_edge": 667, "shortest_edge": 400}
    (folder / "preprocessor_config.json").write_text(json.dumps(settings))
    return folder


@pytest.fixture(scope="module")
def model_and_processor(model_dir):
    return FasterRCNNForObjectDetection.from_pretrained(model_dir).eval(), FasterRCNNImageProcessor.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def alone(model_and_processor):
    """Each image's detections when it is processed on its own: (boxes, scores, labels) per image."""
    model, processor = model_and_processor
    results = []
    for name in NAMES:
        with torch.no_grad():
            outputs = model(**processor(images=[Image.open(IMAGES / name)]))
        result = processor.post_process_object_detection(outputs, threshold=0.0)[0]
        results.append((result["boxes"], result["scores"].tolist(), result["labels"].tolist()))
    return results


def test_pipeline_with_a_batch_size_matches_one_image_at_a_time(model_dir, alone):
    detector = pipeline("object-detection", model=str(model_dir))
    batches = []  # the model's outputs for the pipeline's batches, to compare boxes before they become integers
    detector.model.register_forward_hook(lambda module, args, output: batches.append(output))
    images = [Image.open(IMAGES / name) for name in NAMES]
    piped = detector(images, threshold=0.0, batch_size=8)
    assert len(batches) == 1 and batches[0].pred_boxes.shape[0] == len(NAMES)  # one batch of all six
    batched = detector.image_processor.post_process_object_detection(batches[0], threshold=0.0)
    id2label = detector.model.config.id2label
    for name, (boxes, scores, labels), result, detections in zip(NAMES, alone, batched, piped):
        comparison = compare_detections(
            boxes, scores, labels, result["boxes"], result["scores"].tolist(), result["labels"].tolist()
        )
        assert_matches(comparison, f"pipeline batch, {name}")
        assert [item["label"] for item in detections] == [id2label[label] for label in result["labels"].tolist()]
        assert [list(item["box"].values()) for item in detections] == result["boxes"].int().tolist()


def test_without_grouping_a_padded_batch_changes_detections(model_and_processor, alone):
    """Why the model groups by padded size: padded to a larger neighbour, an image's detections change."""
    model, processor = model_and_processor
    arrays = [processor.resize(to_rgb_array(Image.open(IMAGES / name))) for name in NAMES[:3]]
    inputs = processor(images=[Image.open(IMAGES / name) for name in NAMES[:3]])
    batch = {
        "pixel_values": processor.normalize_and_pad(arrays),  # one batch padded to its largest image
        "image_sizes": inputs["image_sizes"],
        "original_sizes": inputs["original_sizes"],
    }
    comparisons = {}
    for grouped in (False, True):
        with torch.no_grad():
            outputs = model(**batch, padded_sizes=inputs["padded_sizes"] if grouped else None)
        astronaut = processor.post_process_object_detection(outputs, threshold=0.0)[0]
        comparisons[grouped] = compare_detections(
            *alone[0], astronaut["boxes"], astronaut["scores"].tolist(), astronaut["labels"].tolist()
        )
    # The same input, grouped by padded size, gives the detections of the image alone: the batch is sound ...
    assert_matches(comparisons[True], "the grouped batch")
    # ... and ungrouped, the same detections come out (all 100, most still matched) with boxes and scores moved
    # past the fixtures' tolerance by the neighbour's padding.
    ungrouped = comparisons[False]
    assert ungrouped.count == ungrouped.reference_count == 100 and ungrouped.matched >= 50, ungrouped
    assert ungrouped.max_box_difference > 10 * MAX_BOX_DIFFERENCE and not ungrouped.passes, ungrouped


def test_detector_runs_many_images_in_real_batches_of_one_padded_size(model_dir, alone, capsys):
    detector = Detector(model_dir, device="cpu")
    calls = []
    detector.model.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(kwargs["padded_sizes"].tolist()), with_kwargs=True
    )
    inputs = [IMAGES / name if index % 2 else Image.open(IMAGES / name) for index, name in enumerate(NAMES)]
    results = detector.detect_batch(inputs, threshold=0.0, batch_size=2, progress=True)
    assert "6/6" in capsys.readouterr().err  # the progress bar
    for name, (boxes, scores, labels), detections in zip(NAMES, alone, results):
        comparison = compare_detections(
            boxes, scores, labels,
            [d.box for d in detections], [d.score for d in detections], [d.label_id for d in detections],
        )  # fmt: skip
        assert_matches(comparison, f"detect_batch, {name}")
    # Four padded sizes, two of them shared by two images: two passes of two images, none mixing sizes.
    assert sorted(len(sizes) for sizes in calls) == [1, 1, 2, 2]
    assert all(len({tuple(size) for size in sizes}) == 1 for sizes in calls)


def test_padded_sizes_that_do_not_fit_are_refused(model_and_processor):
    model, processor = model_and_processor
    inputs = processor(images=[Image.open(IMAGES / "tiny_noise.png")])
    with pytest.raises(InvalidImageError, match="padded_sizes must have shape"):
        model(**{**inputs, "padded_sizes": torch.tensor([[672, 416], [672, 416]])})
    with pytest.raises(InvalidImageError, match="must not be smaller than image_sizes"):
        model(**{**inputs, "padded_sizes": torch.tensor([[32, 32]])})
    with pytest.raises(InvalidImageError, match="exceed the pixel_values size"):
        model(**{**inputs, "padded_sizes": torch.tensor([[2000, 2000]])})
