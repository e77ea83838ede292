"""On a CUDA GPU: the detections mmdetection gives (the fixtures were computed on the CPU), with PyTorch's default
TF32 setting on, which the model must not use for float32; and TF32 when asked for. Skipped without a GPU;
`bash scripts/gpu-check.sh` runs these tests and the CUDA benchmark on a machine that has one."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from conftest import case_images, reference, resized_image_path
from faster_rcnn_hub.models.faster_rcnn import fused_inference
from parity import assert_matches, compare_detections

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (bash scripts/gpu-check.sh runs these tests on one)"
)

CASES = ["tiny_r50_fpn_coco", "tiny_r50_caffe_fpn_voc", "r50_fpn_1x_coco", "r50_caffe_c4_1x_coco"]
PARAMS = [(case, image) for case in CASES for image in case_images(case)]


@pytest.fixture
def tf32_allowed_by_the_caller():
    """PyTorch's defaults let cuDNN use TF32; make sure both switches say so, as many users' code does."""
    switches = fused_inference.tf32_switches()
    saved = [getattr(settings, name) for settings, name, _, _ in switches]
    for settings, name, tf32_value, _ in switches:
        setattr(settings, name, tf32_value)
    yield
    for (settings, name, _, _), value in zip(switches, saved):
        setattr(settings, name, value)


def _cuda_outputs(loaded_model, case: str, image: str):
    model, processor = loaded_model(case)
    model = model.to("cuda")
    try:
        inputs = processor(images=[Image.open(resized_image_path(case, image))], device="cuda")
        inputs["original_sizes"] = torch.tensor([reference(case, image)["ori_shape"]], device="cuda")
        with torch.no_grad():
            return {key: value.cpu() for key, value in model(**inputs).items() if isinstance(value, torch.Tensor)}
    finally:
        model.to("cpu")


@pytest.mark.parametrize("case,image", PARAMS)
def test_cuda_detections_match_mmdetection(loaded_model, case, image, tf32_allowed_by_the_caller):
    outputs = _cuda_outputs(loaded_model, case, image)
    expected = reference(case, image)
    count = int(outputs["num_detections"][0])
    comparison = compare_detections(
        expected["boxes"], expected["scores"], expected["labels"],
        outputs["pred_boxes"][0, :count], outputs["scores"][0, :count].tolist(), outputs["labels"][0, :count].tolist(),
    )  # fmt: skip
    assert_matches(comparison, f"{case}/{image} detections on CUDA")


def test_tf32_is_used_when_asked_for_and_changes_the_float32_result(loaded_model, tf32_allowed_by_the_caller):
    model, processor = loaded_model("r50_fpn_1x_coco")
    image = case_images("r50_fpn_1x_coco")[0]
    model = model.to("cuda")
    try:
        inputs = processor(images=[Image.open(resized_image_path("r50_fpn_1x_coco", image))], device="cuda")
        with torch.no_grad():
            exact = model(**inputs).proposal_scores
            tf32 = model.enable_tf32()(**inputs).proposal_scores
    finally:
        model.enable_tf32(False).to("cpu")
    # TF32 rounds the convolutions' inputs to 10 mantissa bits: the scores move (on GPUs with TF32 units).
    if torch.cuda.get_device_capability()[0] >= 8:
        assert not torch.equal(exact, tf32)
