"""Parity with mmdetection 3.3.0 where the test-time thresholds decide the detections.

The random-weight fixtures of `test_parity.py` always hold exactly `max_per_img` detections scored far above the
score threshold, so neither the threshold, nor `min_bbox_size`, nor the truncation is ever exercised there. These
two cases run a *trained* model (the bundled default model's weights, mapped back to mmdetection's keys) on the
synthetic shapes and on photos: detections are sparse, and `trained_r18_shapes_strict` (score_thr 0.3,
max_per_img 5, RPN min_bbox_size 8, nms_pre 200) cuts most images.

The mmdetection checkpoint is rebuilt at test time from the bundled weights (the fixtures' `.pth` holds exactly
these tensors) with the config embedded in the manifest's meta, and converted as a user would; the synthetic
images are redrawn from their seed (bit-identical to the images mmdetection read).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import IMAGES, MMDET, case_images, reference
from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor
from faster_rcnn_hub.conversion import convert_checkpoint
from faster_rcnn_hub.conversion.state_dict import rename_key
from faster_rcnn_hub.data.synthetic import generate_image
from faster_rcnn_hub.default_model import default_model_dir
from parity import assert_matches, compare_detections

CASES = ["trained_r18_shapes", "trained_r18_shapes_strict"]
SYNTHETIC_SEED = 5151  # `faster-rcnn-hub synth --num-images 6 --seed 5151`, the images the fixtures ran on
PARAMS = [(case, image) for case in CASES for image in case_images(case)]


def original_image(name: str) -> Image.Image:
    if name.startswith(f"synth{SYNTHETIC_SEED}_"):
        return generate_image(SYNTHETIC_SEED, int(name.rsplit("_", 1)[1])).image
    return Image.open(IMAGES / f"{name}.png")


@pytest.fixture(scope="module")
def trained_models(tmp_path_factory):
    """`trained_models(case)` -> (model, processor) converted from the rebuilt mmdetection checkpoint."""
    bundled = load_file(default_model_dir() / "model.safetensors")
    cache: dict[str, tuple] = {}

    def get(case: str):
        if case not in cache:
            manifest = json.loads((MMDET / case / "manifest.json").read_text())
            state_dict = {key: bundled[rename_key(key)].clone() for key, _ in manifest["keys"]}
            folder = tmp_path_factory.mktemp(case)
            torch.save({"meta": manifest["meta"], "state_dict": state_dict}, folder / f"{case}.pth")
            convert_checkpoint(folder / f"{case}.pth", folder / "model")
            cache[case] = (
                FasterRCNNForObjectDetection.from_pretrained(folder / "model").eval(),
                FasterRCNNImageProcessor.from_pretrained(folder / "model"),
            )
        return cache[case]

    return get


def test_the_strict_case_converts_to_its_strict_settings(trained_models):
    """The conversion carries the thresholds that the parity below depends on."""
    model, _ = trained_models("trained_r18_shapes_strict")
    config = model.config
    assert (config.rpn_nms_pre, config.rpn_max_per_img, config.rpn_min_bbox_size) == (200, 100, 8)
    assert (config.rcnn_score_threshold, config.rcnn_max_per_img) == (0.3, 5)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("case,image", PARAMS)
def test_thresholded_detections_match_mmdetection(trained_models, case, image, fused):
    model, processor = trained_models(case)
    expected = reference(case, image)
    inputs = processor(images=[original_image(image)])
    assert inputs["image_sizes"].tolist() == [expected["img_shape"]]
    pixel_values = inputs["pixel_values"].double()
    # mmdetection's padded input tensor, by its statistics: the image reached the network unchanged.
    assert abs(pixel_values.mean().item() - expected["input_mean"]) < 1e-6
    assert abs(pixel_values.std().item() - expected["input_std"]) < 1e-5
    model.enable_fused_inference(fused)
    try:
        with torch.no_grad():
            outputs = model(**inputs)
    finally:
        model.enable_fused_inference(True)

    proposals = np.load(MMDET / case / f"{image}.proposals.npy")
    count = int(outputs.num_proposals[0])
    assert count == expected["num_proposals"]
    comparison = compare_detections(
        proposals[:, :4], proposals[:, 4], [0] * len(proposals),
        outputs.proposals[0, :count], outputs.proposal_scores[0, :count].tolist(), [0] * count,
    )  # fmt: skip
    assert_matches(comparison, f"{case}/{image} proposals")

    result = processor.post_process_object_detection(outputs, threshold=0.0, target_sizes=[expected["ori_shape"]])[0]
    comparison = compare_detections(
        expected["boxes"], expected["scores"], expected["labels"],
        result["boxes"], result["scores"].tolist(), result["labels"].tolist(),
    )  # fmt: skip
    assert_matches(comparison, f"{case}/{image} detections ({'fused' if fused else 'unfused'})")
