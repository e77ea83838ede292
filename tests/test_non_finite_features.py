"""Half precision: features that overflow float16 are an error saying so, never NaN or infinite boxes sent into NMS
and returned as detections. Checked on a converted mmdetection fixture whose stem is made to overflow float16."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from conftest import IMAGES
from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor
from faster_rcnn_hub.errors import NonFiniteFeaturesError

# The stem's BatchNorm scale times this: activations reach about 1e5, finite in float32 and bfloat16 but past
# float16's largest value (65504).
STEM_GAIN = 3e4


@pytest.fixture(scope="module")
def loud_model_folder(converted_model, tmp_path_factory):
    """The tiny converted COCO model with its stem's BatchNorm scale multiplied by STEM_GAIN."""
    model = FasterRCNNForObjectDetection.from_pretrained(converted_model("tiny_r50_fpn_coco"))
    with torch.no_grad():
        model.backbone.stem.norm.weight.mul_(STEM_GAIN)
        model.backbone.stem.norm.bias.mul_(STEM_GAIN)
    folder = tmp_path_factory.mktemp("loud") / "model"
    model.save_pretrained(folder)
    FasterRCNNImageProcessor.from_pretrained(converted_model("tiny_r50_fpn_coco")).save_pretrained(folder)
    return folder


def _inputs(folder):
    return FasterRCNNImageProcessor.from_pretrained(folder)(images=[Image.open(IMAGES / "chelsea.png")])


def test_float32_and_bfloat16_run_where_float16_overflows(loud_model_folder):
    inputs = _inputs(loud_model_folder)
    for dtype in (torch.float32, torch.bfloat16):
        model = FasterRCNNForObjectDetection.from_pretrained(loud_model_folder, dtype=dtype).eval()
        with torch.no_grad():
            features = model.backbone(inputs["pixel_values"].to(dtype))
            outputs = model(**inputs)
        assert max(float(level.float().abs().max()) for level in features) > 65504, "the test model must overflow"
        # No refusal where the range holds: the guard looks at the features, not at the dtype.
        assert bool(torch.isfinite(outputs.pred_boxes).all() and torch.isfinite(outputs.scores).all())


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_float16_overflow_is_an_error_not_nan_detections(loud_model_folder, fused):
    model = FasterRCNNForObjectDetection.from_pretrained(loud_model_folder, dtype=torch.float16).eval()
    model.enable_fused_inference(fused)
    with torch.no_grad(), pytest.raises(NonFiniteFeaturesError, match=r"float16 overflowed.*float32.*bfloat16"):
        model(**_inputs(loud_model_folder))
