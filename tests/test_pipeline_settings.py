"""Conversion refuses, naming the field, test-pipeline settings that change the pixels the network sees and that
the processor cannot reproduce (the Resize's interpolation and backend, LoadImageFromFile's decoding backend,
colour type and channel order); mmdetection's defaults, written out, convert."""

from __future__ import annotations

import copy
import json

import pytest

from conftest import MANIFESTS, MMDET, write_manifest_config
from faster_rcnn_hub.conversion import convert_checkpoint, settings_from_mmdet_config
from faster_rcnn_hub.errors import UnsupportedArchitectureError

TINY_COCO = MMDET / "tiny_r50_fpn_coco" / "tiny_r50_fpn_coco.pth"


def manifest_with(step_type: str, field: str, value) -> dict:
    manifest = copy.deepcopy(json.loads((MANIFESTS / "r50_fpn_1x_coco.json").read_text()))
    step = next(step for step in manifest["test_pipeline"] if step["type"] == step_type)
    step[field] = value
    return manifest


def config_of(manifest: dict) -> dict:
    dataset = {"type": "CocoDataset", "pipeline": manifest["test_pipeline"], "test_mode": True}
    return {"model": manifest["model_cfg"], "test_dataloader": {"batch_size": 1, "dataset": dataset}}


@pytest.mark.parametrize(
    "step_type,field,value",
    [
        ("Resize", "interpolation", "bicubic"),
        ("Resize", "interpolation", "nearest"),
        ("Resize", "backend", "pillow"),
        ("LoadImageFromFile", "imdecode_backend", "pillow"),
        ("LoadImageFromFile", "imdecode_backend", "turbojpeg"),
        ("LoadImageFromFile", "color_type", "grayscale"),
        ("LoadImageFromFile", "color_type", "color_ignore_orientation"),
        ("LoadImageFromFile", "channel_order", "rgb"),
    ],
)
def test_settings_that_change_the_pixels_are_refused_naming_the_field(step_type, field, value):
    with pytest.raises(UnsupportedArchitectureError, match=rf"{step_type}\.{field} is '{value}'"):
        settings_from_mmdet_config(config_of(manifest_with(step_type, field, value)))


def test_mmdetections_defaults_written_out_convert_to_the_same_processor():
    plain = settings_from_mmdet_config(config_of(manifest_with("Resize", "keep_ratio", True)))
    manifest = manifest_with("Resize", "interpolation", "bilinear")
    resize = next(step for step in manifest["test_pipeline"] if step["type"] == "Resize")
    resize["backend"] = "cv2"
    load = next(step for step in manifest["test_pipeline"] if step["type"] == "LoadImageFromFile")
    load.update(imdecode_backend="cv2", color_type="color", channel_order="bgr")
    explicit = settings_from_mmdet_config(config_of(manifest))
    assert explicit.processor == plain.processor


def test_a_refused_conversion_writes_nothing(tmp_path):
    config_file = write_manifest_config(manifest_with("Resize", "backend", "pillow"), tmp_path / "config.py")
    with pytest.raises(UnsupportedArchitectureError, match=r"Resize\.backend"):
        convert_checkpoint(TINY_COCO, tmp_path / "out", config_path=config_file)
    assert not (tmp_path / "out").exists()
