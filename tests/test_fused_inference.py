"""The fast inference paths: folded BatchNorm, fused kernels, gathered RoIAlign, and reduced precision."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.ops import roi_align

from conftest import IMAGES
from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor
from faster_rcnn_hub.default_model import default_model_dir, example_image_path
from faster_rcnn_hub.models.faster_rcnn.roi_align import roi_align_gather

TINY = "tiny_r50_fpn_coco"


def _random_rois(count: int, height: int, width: int, stride: float, generator: torch.Generator) -> torch.Tensor:
    """RoIs in input pixels, some partly or wholly outside the map, some thinner than a pixel."""
    corners = torch.rand(count, 2, generator=generator) * torch.tensor([width, height]) * stride * 1.4 - 0.2 * stride
    sizes = torch.rand(count, 2, generator=generator) ** 3 * torch.tensor([width, height]) * stride
    batch_index = torch.randint(0, 2, (count, 1), generator=generator).float()
    return torch.cat([batch_index, corners, corners + sizes], dim=1)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_gathered_roi_align_equals_torchvision(aligned, sampling_ratio):
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 24, 13, 21, generator=generator).contiguous(memory_format=torch.channels_last)
    rois = _random_rois(300, 13, 21, 8.0, generator)
    expected = roi_align(features, rois, (7, 7), 1 / 8, sampling_ratio, aligned)
    pooled = roi_align_gather(features, rois, (7, 7), 1 / 8, sampling_ratio, aligned)
    torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-5)
    empty = roi_align_gather(features, rois[:0], (7, 7), 1 / 8, sampling_ratio, aligned)
    assert empty.shape == (0, 24, 7, 7)


def _detections(model, inputs):
    with torch.no_grad():
        outputs = model(**inputs)
    count = int(outputs.num_detections[0])
    return outputs.pred_boxes[0, :count], outputs.scores[0, :count], outputs.labels[0, :count]


def test_fused_and_unfused_inference_give_the_same_detections(loaded_model):
    model, processor = loaded_model(TINY)
    inputs = processor(images=Image.open(IMAGES / "chelsea.png"))
    try:
        unfused = _detections(model.enable_fused_inference(False), inputs)
        fused = _detections(model.enable_fused_inference(True), inputs)
    finally:
        model.enable_fused_inference(True)
    assert torch.equal(fused[2], unfused[2]) and len(fused[2]) > 0
    torch.testing.assert_close(fused[0], unfused[0], rtol=0, atol=1e-3)
    torch.testing.assert_close(fused[1], unfused[1], rtol=0, atol=1e-5)


def test_folded_weights_follow_changes_to_the_model(converted_model):
    """Folded copies are caches: an in-place update or a newly loaded state dict must not leave them stale."""
    model = FasterRCNNForObjectDetection.from_pretrained(converted_model(TINY)).eval()
    pixel_values = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.backbone(pixel_values)  # builds the folded copies
        norm = model.backbone.stem.norm
        norm.running_var.mul_(4.0)
        norm.bias.add_(0.5)
        fused = model.backbone(pixel_values)
        unfused = model.enable_fused_inference(False).backbone(pixel_values)
    for fused_level, unfused_level in zip(fused, unfused):
        torch.testing.assert_close(fused_level, unfused_level, rtol=1e-4, atol=1e-4)


def test_gradients_flow_in_eval_mode(converted_model):
    """Eval mode with gradients wanted (fine-tuning with frozen statistics, saliency) takes the unfused path."""
    model = FasterRCNNForObjectDetection.from_pretrained(converted_model(TINY)).eval()
    pixel_values = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    model.fpn(model.backbone(pixel_values))[0].sum().backward()
    assert model.backbone.stem.conv.weight.grad is not None
    assert model.fpn.output_convs[0].weight.grad is not None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_keeps_the_float32_detections(dtype):
    """`from_pretrained(..., dtype=...)` runs the network in half precision, returns float32 detections, and on a
    trained model finds what float32 finds (same label, IoU >= 0.9, score within 0.05)."""
    from torchvision.ops import box_iou

    folder = default_model_dir()
    processor = FasterRCNNImageProcessor.from_pretrained(folder)
    inputs = processor(images=Image.open(example_image_path()))
    reference = FasterRCNNForObjectDetection.from_pretrained(folder).eval()
    reduced = FasterRCNNForObjectDetection.from_pretrained(folder, dtype=dtype).eval()
    assert reduced.backbone.stem.conv.weight.dtype == dtype
    with torch.no_grad():
        expected = processor.post_process_object_detection(reference(**inputs), threshold=0.5)[0]
        outputs = reduced(**inputs)
        found = processor.post_process_object_detection(outputs, threshold=0.3)[0]
    assert outputs.pred_boxes.dtype == torch.float32 and outputs.scores.dtype == torch.float32
    assert len(expected["scores"]) >= 3
    overlaps = box_iou(expected["boxes"], found["boxes"])
    for index in range(len(expected["scores"])):
        same_label = found["labels"] == expected["labels"][index]
        candidates = torch.where(same_label, overlaps[index], torch.zeros_like(overlaps[index]))
        best = int(candidates.argmax())
        assert candidates[best] >= 0.9, f"float32 detection {index} has no {dtype} match"
        assert abs(float(found["scores"][best]) - float(expected["scores"][index])) <= 0.05


def test_detector_refuses_an_unknown_dtype_and_warns_where_half_precision_is_slow(monkeypatch):
    from faster_rcnn_hub.detection import detector as detection
    from faster_rcnn_hub.errors import FasterRCNNHubError

    with pytest.raises(FasterRCNNHubError, match="dtype must be one of"):
        detection.Detector(default_model_dir(), device="cpu", dtype="int8")
    monkeypatch.setattr(detection, "cpu_runs_fast", lambda dtype: dtype == torch.float32)
    with pytest.warns(UserWarning, match="no bfloat16 units"):
        detector = detection.Detector(default_model_dir(), device="cpu", dtype="bfloat16")
    assert detector.model.dtype == torch.bfloat16
