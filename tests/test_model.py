"""The model through transformers' API: Auto classes, save/load, batches, devices, edge cases."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoConfig, AutoImageProcessor, AutoModelForObjectDetection

from conftest import IMAGES
from faster_rcnn_hub import (
    FasterRCNNConfig,
    FasterRCNNForObjectDetection,
    FasterRCNNImageProcessor,
    InvalidImageError,
)

TINY = "tiny_r50_fpn_coco"


def test_documented_api_works_exactly_as_written(converted_model):
    out_dir = converted_model(TINY)
    pil_image = Image.open(IMAGES / "chelsea.png")
    h, w = pil_image.height, pil_image.width

    model = FasterRCNNForObjectDetection.from_pretrained(out_dir).eval()
    processor = FasterRCNNImageProcessor.from_pretrained(out_dir)
    inputs = processor(images=[pil_image], return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    result = processor.post_process_object_detection(outputs, threshold=0.0, target_sizes=[(h, w)])[0]

    assert set(result) == {"scores", "labels", "boxes"}
    assert result["boxes"].shape == (len(result["scores"]), 4)
    assert bool((result["scores"][:-1] >= result["scores"][1:]).all())
    assert set(result["labels"].tolist()) <= set(model.config.id2label)


def test_auto_classes_resolve_to_this_package(converted_model):
    out_dir = converted_model(TINY)
    assert type(AutoConfig.from_pretrained(out_dir)) is FasterRCNNConfig
    assert type(AutoModelForObjectDetection.from_pretrained(out_dir)) is FasterRCNNForObjectDetection
    assert type(AutoImageProcessor.from_pretrained(out_dir)) is FasterRCNNImageProcessor


def test_save_pretrained_round_trips_exactly(loaded_model, tmp_path):
    model, processor = loaded_model(TINY)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    reloaded = FasterRCNNForObjectDetection.from_pretrained(tmp_path).eval()
    saved = load_file(str(tmp_path / "model.safetensors"))
    for key, value in model.state_dict().items():
        assert torch.equal(saved[key], value), key
    inputs = processor(images=Image.open(IMAGES / "coffee.png"))
    with torch.no_grad():
        first, second = model(**inputs), reloaded(**inputs)
    for key in ("pred_boxes", "scores", "labels", "num_detections"):
        assert torch.equal(first[key], second[key]), key


def test_batch_outputs_are_padded_with_a_count(loaded_model):
    model, processor = loaded_model(TINY)
    images = [Image.open(IMAGES / name) for name in ("astronaut.png", "wide_pattern.png")]
    inputs = processor(images=images)
    with torch.no_grad():
        outputs = model(**inputs)
    assert outputs.pred_boxes.shape == (2, model.config.rcnn_max_per_img, 4)
    results = processor.post_process_object_detection(outputs, threshold=0.0)
    for index, (image, result) in enumerate(zip(images, results)):
        count = int(outputs.num_detections[index])
        assert len(result["scores"]) == count > 0
        assert bool((outputs.labels[index, count:] == -1).all())
        assert bool((outputs.scores[index, count:] == 0).all())
        # Boxes are clipped to the resized image before being mapped back, so they lie inside the original.
        boxes = result["boxes"]
        assert float(boxes[:, 0::2].min()) >= 0 and float(boxes[:, 2].max()) <= image.width + 1e-3
        assert float(boxes[:, 1::2].min()) >= 0 and float(boxes[:, 3].max()) <= image.height + 1e-3


def test_no_proposal_surviving_gives_empty_detections():
    config = FasterRCNNConfig(
        backbone_depth=18, backbone_base_channels=8, fpn_out_channels=16, rpn_feat_channels=16,
        box_head_fc_channels=32, num_classes=3, rpn_min_bbox_size=1e6,
    )  # fmt: skip
    model = FasterRCNNForObjectDetection(config).eval()
    with torch.no_grad():
        outputs = model(pixel_values=torch.randn(2, 3, 64, 96))
    assert outputs.num_detections.tolist() == [0, 0]
    assert outputs.num_proposals.tolist() == [0, 0]
    results = FasterRCNNImageProcessor().post_process_object_detection(outputs, threshold=0.0)
    assert [len(result["scores"]) for result in results] == [0, 0]


@pytest.mark.parametrize(
    "pixel_values,message",
    [
        (torch.randn(1, 4, 32, 32), r"\(batch, 3, height, width\)"),
        (torch.randn(3, 32, 32), r"\(batch, 3, height, width\)"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "floating point"),
        (torch.full((1, 3, 32, 32), float("nan")), "NaN"),
        (torch.zeros(0, 3, 32, 32), "empty batch"),
    ],
)
def test_bad_pixel_values_are_refused(loaded_model, pixel_values, message):
    model, _ = loaded_model(TINY)
    with pytest.raises(InvalidImageError, match=message):
        model(pixel_values=pixel_values)


def test_image_sizes_larger_than_the_batch_are_refused(loaded_model):
    model, _ = loaded_model(TINY)
    with pytest.raises(InvalidImageError, match="exceed"):
        model(pixel_values=torch.zeros(1, 3, 32, 32), image_sizes=torch.tensor([[64, 32]]))


def test_inference_is_deterministic_on_cpu(loaded_model):
    model, processor = loaded_model(TINY)
    inputs = processor(images=Image.open(IMAGES / "astronaut.png"))
    with torch.no_grad():
        first, second = model(**inputs), model(**inputs)
    assert torch.equal(first.pred_boxes, second.pred_boxes) and torch.equal(first.scores, second.scores)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_detections_match_cpu(loaded_model):
    from parity import assert_matches, compare_detections

    model, processor = loaded_model(TINY)
    inputs = processor(images=Image.open(IMAGES / "coffee.png"))
    with torch.no_grad():
        cpu = model(**inputs)
        cuda_model = FasterRCNNForObjectDetection.from_pretrained(model.name_or_path).cuda().eval()
        gpu = cuda_model(**{key: value.cuda() for key, value in inputs.items()})
    count, gpu_count = int(cpu.num_detections[0]), int(gpu.num_detections[0])
    comparison = compare_detections(
        cpu.pred_boxes[0, :count], cpu.scores[0, :count].tolist(), cpu.labels[0, :count].tolist(),
        gpu.pred_boxes[0, :gpu_count].cpu(), gpu.scores[0, :gpu_count].tolist(), gpu.labels[0, :gpu_count].tolist(),
    )  # fmt: skip
    assert_matches(comparison, "CUDA detections")


def test_norm_eval_keeps_batchnorm_frozen_in_train_mode():
    config = FasterRCNNConfig(backbone_depth=18, backbone_base_channels=8, fpn_out_channels=16,
                              rpn_feat_channels=16, box_head_fc_channels=32, num_classes=3)  # fmt: skip
    model = FasterRCNNForObjectDetection(config).train()
    norms = [module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    assert norms and not any(norm.training for norm in norms)
    assert model.roi_heads.training
