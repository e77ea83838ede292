"""Parity with mmdetection 3.3.0 on the reference fixtures: proposals, detections, end to end, pipeline.

The cases cover mmdetection's Faster R-CNN model zoo: FPN with ResNet-18/50 and ResNeXt-101 32x8d (BGR input,
its own mean/std), pytorch and caffe style, C4 (shared res5 RoI head), DC5 (dilated res5, no FPN), soft-NMS in
the box head, and COCO, Pascal VOC and Cityscapes (8 classes, 2048x1024) heads. The full-size checkpoints are
rebuilt from their manifests' seeds and converted with the config embedded in them, as a user would. Cascade
R-CNN, tiny and full-size, is checked the same way (its stages one by one in test_cascade.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from conftest import IMAGES, MMDET, case_images, reference, resized_image_path
from parity import assert_matches, compare_detections

CASES = [
    "tiny_r50_fpn_coco",
    "tiny_r50_caffe_fpn_voc",
    "tiny_cascade_r50_fpn_coco",
    "tiny_mask_r50_fpn_coco",
    "r50_fpn_1x_coco",
    "r50_caffe_c4_1x_coco",
    "r50_caffe_dc5_1x_coco",
    "r50_fpn_soft_nms_1x_coco",
    "r18_fpn_lsj_coco",
    "x101_32x8d_fpn_ms_3x_coco",
    "r50_fpn_1x_cityscapes",
    "cascade_r50_fpn_1x_coco",
    "mask_r50_fpn_1x_coco",
]
# Full-size models measured under 30 s (rebuild, conversion and forward) that are also marked slow.
SLOW_CASES = {"cascade_r50_fpn_1x_coco", "mask_r50_fpn_1x_coco"}
PARAMS = [
    # The tiny models also make the fast job of the compatibility matrix (lowest and newest supported versions).
    pytest.param(
        case,
        image,
        marks=[pytest.mark.matrix] if case.startswith("tiny") else [pytest.mark.slow] if case in SLOW_CASES else [],
    )
    for case in CASES
    for image in case_images(case)
]
_runs: dict = {}


def run_on_resized(loaded_model, case: str, image: str):
    """Model inputs and outputs for mmdetection's own resized image, with boxes mapped to the original size.

    Computed once per image: the full-size models take seconds per forward on a CPU, and the proposal,
    detection and end-to-end checks all read this one forward.
    """
    key = (case, image)
    if key not in _runs:
        model, processor = loaded_model(case)
        expected = reference(case, image)
        inputs = processor(images=[Image.open(resized_image_path(case, image))])
        assert inputs["image_sizes"].tolist() == [expected["img_shape"]]
        inputs["original_sizes"] = torch.tensor([expected["ori_shape"]])
        with torch.no_grad():
            _runs[key] = (inputs, model(**inputs))
    return _runs[key]


@pytest.mark.parametrize("case,image", PARAMS)
def test_rpn_proposals_match_mmdetection(loaded_model, case, image):
    _, outputs = run_on_resized(loaded_model, case, image)
    expected = np.load(MMDET / case / f"{image}.proposals.npy")
    count = int(outputs.num_proposals[0])
    comparison = compare_detections(
        expected[:, :4], expected[:, 4], [0] * len(expected),
        outputs.proposals[0, :count], outputs.proposal_scores[0, :count].tolist(), [0] * count,
    )  # fmt: skip
    assert_matches(comparison, f"{case}/{image} proposals")


@pytest.mark.parametrize("case,image", PARAMS)
def test_detections_from_resized_image_match_mmdetection(loaded_model, case, image):
    _, outputs = run_on_resized(loaded_model, case, image)
    expected = reference(case, image)
    count = int(outputs.num_detections[0])
    comparison = compare_detections(
        expected["boxes"], expected["scores"], expected["labels"],
        outputs.pred_boxes[0, :count], outputs.scores[0, :count].tolist(), outputs.labels[0, :count].tolist(),
    )  # fmt: skip
    assert_matches(comparison, f"{case}/{image} detections")


@pytest.mark.parametrize("case,image", PARAMS)
def test_end_to_end_detections_match_mmdetection(loaded_model, case, image):
    """The documented API, from the original file: processor resize + model + post-processing.

    The processor must turn the original file into exactly the input mmdetection's resize gives (bit for bit);
    the model's answer to that input is then the forward the checks above already ran, so it is reused.
    """
    _, processor = loaded_model(case)
    expected = reference(case, image)
    pil_image = Image.open(IMAGES / f"{image}.png")
    inputs = processor(images=[pil_image], return_tensors="pt")
    assert inputs["padded_sizes"].tolist() == [list(expected["pad_shape"])]
    resized_inputs, outputs = run_on_resized(loaded_model, case, image)
    for name in ("pixel_values", "image_sizes", "original_sizes"):
        assert torch.equal(inputs[name], resized_inputs[name]), f"{name} differs from mmdetection's resized input"
    height, width = pil_image.height, pil_image.width
    result = processor.post_process_object_detection(outputs, threshold=0.0, target_sizes=[(height, width)])[0]
    comparison = compare_detections(
        expected["boxes"], expected["scores"], expected["labels"],
        result["boxes"], result["scores"].tolist(), result["labels"].tolist(),
    )  # fmt: skip
    assert_matches(comparison, f"{case}/{image} end to end")


def assert_pipeline_reports(found: list[dict], expected: dict, id2label: dict) -> None:
    """The pipeline's detections (label names, integer pixel boxes) are mmdetection's, by the fixtures' rule."""
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


# Every image for the tiny models: the pipeline loads the converted folder itself and runs the model.
TINY_PIPELINE_PARAMS = [param for param in PARAMS if param.values[0].startswith("tiny")]
FULL_SIZE_CASES = [case for case in CASES if not case.startswith("tiny")]
_pipelines: dict = {}


@pytest.mark.parametrize("case,image", TINY_PIPELINE_PARAMS)
def test_pipeline_reports_mmdetection_detections(converted_model, case, image):
    if case not in _pipelines:
        _pipelines[case] = pipeline("object-detection", model=str(converted_model(case)))
    detector = _pipelines[case]
    found = detector(str(IMAGES / f"{image}.png"), threshold=0.0)
    assert_pipeline_reports(found, reference(case, image), detector.model.config.id2label)


@pytest.mark.parametrize(
    "case", [pytest.param(case, marks=[pytest.mark.slow] if case in SLOW_CASES else []) for case in FULL_SIZE_CASES]
)
def test_pipeline_reports_mmdetection_detections_of_full_size_models(loaded_model, case, monkeypatch):
    """`pipeline("object-detection")` from the original file, for the models whose forward takes seconds to a
    minute on a CPU.

    The pipeline must feed the model exactly mmdetection's resized input (checked, bit for bit); the model's answer
    to that input is the forward the checks above already ran, so the model hands it back instead of recomputing.
    """
    model, processor = loaded_model(case)
    image = case_images(case)[0]
    resized_inputs, resized_outputs = run_on_resized(loaded_model, case, image)
    fed = []

    def forward(**inputs):
        fed.append(inputs)
        return resized_outputs

    monkeypatch.setattr(model, "forward", forward)
    detector = pipeline("object-detection", model=model, image_processor=processor)
    found = detector(str(IMAGES / f"{image}.png"), threshold=0.0)
    assert len(fed) == 1 and set(fed[0]) == set(resized_inputs), f"the pipeline fed {[sorted(i) for i in fed]}"
    for name, value in resized_inputs.items():
        assert torch.equal(fed[0][name].cpu(), value), f"the pipeline's {name} differs from mmdetection's input"
    assert_pipeline_reports(found, reference(case, image), model.config.id2label)
