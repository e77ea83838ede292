"""Parity with mmdetection 3.3.0 on the reference fixtures: proposals, detections, end to end, pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from conftest import IMAGES, MMDET, case_images, reference, resized_image_path
from parity import assert_matches, compare_detections

CASES = ["tiny_r50_fpn_coco", "tiny_r50_caffe_fpn_voc", "r50_fpn_1x_coco"]
PARAMS = [(case, image) for case in CASES for image in case_images(case)]
_outputs: dict = {}


def run_on_resized(loaded_model, case: str, image: str):
    """Model outputs for mmdetection's own resized image, with boxes mapped to the original size."""
    key = (case, image)
    if key not in _outputs:
        model, processor = loaded_model(case)
        expected = reference(case, image)
        inputs = processor(images=[Image.open(resized_image_path(case, image))])
        assert inputs["image_sizes"].tolist() == [expected["img_shape"]]
        inputs["original_sizes"] = torch.tensor([expected["ori_shape"]])
        with torch.no_grad():
            _outputs[key] = model(**inputs)
    return _outputs[key]


@pytest.mark.parametrize("case,image", PARAMS)
def test_rpn_proposals_match_mmdetection(loaded_model, case, image):
    outputs = run_on_resized(loaded_model, case, image)
    expected = np.load(MMDET / case / f"{image}.proposals.npy")
    count = int(outputs.num_proposals[0])
    comparison = compare_detections(
        expected[:, :4], expected[:, 4], [0] * len(expected),
        outputs.proposals[0, :count], outputs.proposal_scores[0, :count].tolist(), [0] * count,
    )  # fmt: skip
    assert_matches(comparison, f"{case}/{image} proposals")


@pytest.mark.parametrize("case,image", PARAMS)
def test_detections_from_resized_image_match_mmdetection(loaded_model, case, image):
    outputs = run_on_resized(loaded_model, case, image)
    expected = reference(case, image)
    count = int(outputs.num_detections[0])
    comparison = compare_detections(
        expected["boxes"], expected["scores"], expected["labels"],
        outputs.pred_boxes[0, :count], outputs.scores[0, :count].tolist(), outputs.labels[0, :count].tolist(),
    )  # fmt: skip
    assert_matches(comparison, f"{case}/{image} detections")


@pytest.mark.parametrize("case,image", PARAMS)
def test_end_to_end_detections_match_mmdetection(loaded_model, case, image):
    """The documented API, from the original file: processor resize + model + post-processing."""
    model, processor = loaded_model(case)
    expected = reference(case, image)
    pil_image = Image.open(IMAGES / f"{image}.png")
    inputs = processor(images=[pil_image], return_tensors="pt")
    assert inputs["padded_sizes"].tolist() == [list(expected["pad_shape"])]
    with torch.no_grad():
        outputs = model(**inputs)
    height, width = pil_image.height, pil_image.width
    result = processor.post_process_object_detection(outputs, threshold=0.0, target_sizes=[(height, width)])[0]
    comparison = compare_detections(
        expected["boxes"], expected["scores"], expected["labels"],
        result["boxes"], result["scores"].tolist(), result["labels"].tolist(),
    )  # fmt: skip
    assert_matches(comparison, f"{case}/{image} end to end")


# Every image for the tiny models; one for the full-size model, whose forward takes seconds.
PIPELINE_PARAMS = [(case, image) for case, image in PARAMS if case.startswith("tiny")] + [
    ("r50_fpn_1x_coco", case_images("r50_fpn_1x_coco")[0])
]
_pipelines: dict = {}


@pytest.mark.parametrize("case,image", PIPELINE_PARAMS)
def test_pipeline_reports_mmdetection_detections(converted_model, case, image):
    expected = reference(case, image)
    if case not in _pipelines:
        _pipelines[case] = pipeline("object-detection", model=str(converted_model(case)))
    detector = _pipelines[case]
    id2label = detector.model.config.id2label
    found = detector(str(IMAGES / f"{image}.png"), threshold=0.0)
    assert len(found) == len(expected["scores"])
    unmatched = []
    remaining = list(found)
    for box, score, label in zip(expected["boxes"], expected["scores"], expected["labels"]):
        truncated = [int(value) for value in box]  # the pipeline reports integer pixels, truncated
        match = next(
            (
                item
                for item in remaining
                if item["label"] == id2label[label]
                and abs(item["score"] - score) <= 1e-3
                and all(abs(item["box"][key] - value) <= 1 for key, value in zip(("xmin", "ymin", "xmax", "ymax"), truncated))
            ),
            None,
        )
        if match is None:
            unmatched.append((id2label[label], score, truncated))
        else:
            remaining.remove(match)
    assert len(unmatched) <= 0.01 * len(expected["scores"]), f"unmatched reference detections: {unmatched[:5]}"
