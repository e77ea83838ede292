"""Converting mmdetection checkpoints: every zoo configuration, strict key checks, configs, classes, safety."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from conftest import MMDET, load_manifest, write_manifest_config, write_seeded_checkpoint
from faster_rcnn_hub import (
    CheckpointError,
    FasterRCNNForObjectDetection,
    FasterRCNNHubError,
    FasterRCNNImageProcessor,
    MMDetConfigError,
    UnsupportedArchitectureError,
)
from faster_rcnn_hub.conversion import convert_checkpoint, rename_key
from faster_rcnn_hub.conversion.classes import VOC_CLASSES
from faster_rcnn_hub.hub.remote_code import remote_code_files

REPO = Path(__file__).resolve().parents[1]
TINY_COCO = MMDET / "tiny_r50_fpn_coco" / "tiny_r50_fpn_coco.pth"
TINY_VOC = MMDET / "tiny_r50_caffe_fpn_voc" / "tiny_r50_caffe_fpn_voc.pth"
ZOO_MANIFESTS = [
    "r18_fpn_lsj_coco",
    "r50_fpn_1x_coco",
    "r50_caffe_fpn_1x_coco",
    "r101_fpn_1x_coco",
    "r101_caffe_fpn_1x_coco",
    "x101_32x4d_fpn_1x_coco",
    "x101_64x4d_fpn_1x_coco",
    "x101_32x8d_fpn_ms_3x_coco",
    "r50_fpn_1x_voc0712",
    "r50_fpn_1x_cityscapes",
    "r50_caffe_c4_1x_coco",
    "r50_caffe_dc5_1x_coco",
    "r50_fpn_soft_nms_1x_coco",
]


@pytest.mark.parametrize("name", ZOO_MANIFESTS)
def test_every_zoo_configuration_converts_with_all_keys_used(name, tmp_path):
    manifest = load_manifest(name)
    checkpoint = write_seeded_checkpoint(manifest, tmp_path / f"{name}.pth", seed=7)
    config_file = write_manifest_config(manifest, tmp_path / f"{name}.py")
    result = convert_checkpoint(checkpoint, tmp_path / "out", config_path=config_file)
    state_dict = torch.load(checkpoint, weights_only=True)["state_dict"]
    checkpoint.unlink()

    model_cfg = manifest["model_cfg"]
    config = result.config
    assert config.num_classes == model_cfg["roi_head"]["bbox_head"]["num_classes"]
    assert config.backbone_depth == model_cfg["backbone"]["depth"]
    assert config.backbone_groups == model_cfg["backbone"].get("groups", 1)
    assert config.backbone_style == model_cfg["backbone"]["style"]
    assert config.backbone_dilations == list(model_cfg["backbone"].get("dilations", [1] * config.backbone_num_stages))
    assert config.neck_type == ("fpn" if "neck" in model_cfg else "none")
    assert config.roi_head_type == ("shared_res5" if "shared_head" in model_cfg["roi_head"] else "fc")
    assert config.rcnn_nms_type == model_cfg["test_cfg"]["rcnn"]["nms"]["type"]
    assert config.rpn_nms_pre == model_cfg["test_cfg"]["rpn"]["nms_pre"]
    layout = "C4" if "shared_head" in model_cfg["roi_head"] else "FPN" if "neck" in model_cfg else "DC5"
    assert config.layout_name == layout
    card = (tmp_path / "out" / "README.md").read_text()
    assert f" {layout} ({name}.pth)" in card  # the title names the layout
    assert ("soft-NMS (linear, IoU 0.5" in card) == (config.rcnn_nms_type == "soft_nms")
    preprocessor = model_cfg["data_preprocessor"]
    assert result.processor.image_mean == preprocessor["mean"]
    assert result.processor.image_std == preprocessor["std"]
    assert result.processor.channel_order == ("rgb" if preprocessor["bgr_to_rgb"] else "bgr")
    scale = next(step["scale"] for step in manifest["test_pipeline"] if step["type"] == "Resize")
    assert result.processor.size == {"longest_edge": max(scale), "shortest_edge": min(scale)}

    # Every key of the zoo checkpoint lands in the model with its shape, and nothing else is there.
    weights = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert sorted(weights) == sorted(rename_key(key) for key, _ in manifest["keys"])
    for key, shape in manifest["keys"]:
        assert tuple(weights[rename_key(key)].shape) == tuple(shape), key

    model = FasterRCNNForObjectDetection.from_pretrained(tmp_path / "out").eval()
    # Small on purpose: a C4 model runs its res5 stage on every proposal.
    pixel_values = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outputs = model(pixel_values=pixel_values)
        features = model.backbone(pixel_values)
    assert outputs.pred_boxes.shape == (1, config.rcnn_max_per_img, 4)
    assert bool(torch.isfinite(outputs.pred_boxes).all())
    # The converted backbone computes what torchvision's ResNet/ResNeXt computes with the checkpoint's weights:
    # every weight in its place, the right block, groups, width and stride placement (caffe: on the 1x1 conv).
    if all(dilation == 1 for dilation in model_cfg["backbone"].get("dilations", [1])):
        expected = torchvision_backbone_features(model_cfg["backbone"], state_dict, pixel_values)
        assert len(features) == len(expected)
        for level, (found, wanted) in enumerate(zip(features, expected)):
            scale = float(wanted.abs().max())
            torch.testing.assert_close(found, wanted, rtol=1e-3, atol=1e-4 * scale, msg=f"{name} level {level}")


def torchvision_backbone_features(backbone: dict, state_dict: dict, pixel_values: torch.Tensor) -> list[torch.Tensor]:
    """torchvision's ResNet, built from an mmdetection backbone config, with the checkpoint's `backbone.*` weights
    (mmdetection's names are torchvision's), at the config's `out_indices`: an independent reference."""
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

    block, layers = {18: (BasicBlock, [2, 2, 2, 2]), 50: (Bottleneck, [3, 4, 6, 3]), 101: (Bottleneck, [3, 4, 23, 3])}[
        backbone["depth"]
    ]
    groups = backbone.get("groups", 1)
    network = ResNet(block, layers, groups=groups, width_per_group=backbone.get("base_width", 64) if groups > 1 else 64)
    weights = {key.removeprefix("backbone."): value for key, value in state_dict.items() if key.startswith("backbone.")}
    missing, unexpected = network.load_state_dict(weights, strict=False)
    stages = [network.layer1, network.layer2, network.layer3, network.layer4][: backbone["num_stages"]]
    assert not unexpected and all(key.startswith(("fc.", "layer4.")) for key in missing), (missing, unexpected)
    if backbone["style"] == "caffe":
        for stage in stages[1:]:
            stride = stage[0].conv2.stride
            stage[0].conv1.stride, stage[0].conv2.stride = stride, (1, 1)
    network.eval()
    with torch.no_grad():
        hidden = network.maxpool(network.relu(network.bn1(network.conv1(pixel_values))))
        outputs = []
        for stage in stages:
            hidden = stage(hidden)
            outputs.append(hidden)
    return [outputs[index] for index in backbone["out_indices"]]


def _set(path: str, value):
    def change(model_cfg: dict) -> None:
        *parents, leaf = path.split(".")
        section = model_cfg
        for part in parents:
            section = section[part]
        section[leaf] = value

    return change


@pytest.mark.parametrize(
    "name,change,message",
    [
        ("r50_fpn_1x_coco", _set("neck.type", "PAFPN"), r"`model.neck.type` = 'PAFPN' is not supported"),
        (
            "r50_fpn_1x_coco",
            _set("roi_head.bbox_head.type", "DoubleConvFCBBoxHead"),
            r"`model.roi_head.bbox_head.type` = 'DoubleConvFCBBoxHead' is not supported",
        ),
        ("r50_fpn_1x_coco", _set("roi_head.bbox_head.type", "BBoxHead"), r"without a `model.roi_head.shared_head`"),
        ("r50_caffe_c4_1x_coco", _set("roi_head.shared_head.stage", 2), r"`model.roi_head.shared_head.stage` = 2"),
        ("r50_caffe_c4_1x_coco", _set("backbone.num_stages", 4), r"needs the C4 layout"),
        ("r50_caffe_dc5_1x_coco", _set("backbone.out_indices", [2, 3]), r"selects several stages"),
        (
            "r50_fpn_soft_nms_1x_coco",
            _set("test_cfg.rpn.nms", {"type": "soft_nms", "iou_threshold": 0.7}),
            r"`model.test_cfg.rpn.nms.type` = 'soft_nms'",
        ),
        (
            "r50_fpn_soft_nms_1x_coco",
            _set("test_cfg.rcnn.nms", {"type": "soft_nms", "iou_threshold": 0.5, "method": "cubic"}),
            r"`model.test_cfg.rcnn.nms.method` = 'cubic'",
        ),
    ],
    ids=[
        "other-neck",
        "other-box-head",
        "avg-pool-box-head-without-shared-head",
        "shared-head-not-res5",
        "shared-head-after-four-stages",
        "no-neck-several-maps",
        "soft-nms-in-rpn",
        "unknown-soft-nms-method",
    ],
)
def test_unsupported_architectures_are_refused_naming_the_field(name, change, message, tmp_path):
    manifest = copy.deepcopy(load_manifest(name))
    change(manifest["model_cfg"])
    config_file = write_manifest_config(manifest, tmp_path / f"{name}.py")
    with pytest.raises(UnsupportedArchitectureError, match=message):
        convert_checkpoint(TINY_COCO, tmp_path / "out", config_path=config_file)
    assert not (tmp_path / "out").exists()


def _tampered_checkpoint(tmp_path: Path, change) -> Path:
    checkpoint = torch.load(TINY_COCO, weights_only=True)
    change(checkpoint["state_dict"])
    path = tmp_path / "tampered.pth"
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda state: state.pop("rpn_head.rpn_reg.weight"), "rpn.head.box_deltas.weight"),
        (lambda state: state.__setitem__("roi_head.mask_head.fc.weight", torch.zeros(3)), "roi_head.mask_head.fc.weight"),
        (lambda state: state.__setitem__("neck.fpn_convs.0.conv.weight", torch.zeros(32, 32, 1, 1)), r"neck.fpn_convs.0.conv.weight: checkpoint shape \(32, 32, 1, 1\)"),
    ],
    ids=["missing-key", "extra-key", "wrong-shape"],
)
def test_checkpoints_that_do_not_fit_are_refused_naming_the_key(tmp_path, change, message):
    with pytest.raises(CheckpointError, match=message):
        convert_checkpoint(_tampered_checkpoint(tmp_path, change), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not any(path.name.startswith(".out.") for path in tmp_path.iterdir())


MMDET2_CONFIG = """
model = dict(
    type='FasterRCNN',
    backbone=dict(type='ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True, style='pytorch',
                  base_channels=8, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(type='FPN', in_channels=[32, 64, 128, 256], out_channels=32, num_outs=5),
    rpn_head=dict(type='RPNHead', in_channels=32, feat_channels=32,
                  anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                                        strides=[4, 8, 16, 32, 64]),
                  bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                                  target_stds=[1.0, 1.0, 1.0, 1.0])),
    roi_head=dict(
        type='StandardRoIHead',
        bbox_roi_extractor=dict(type='SingleRoIExtractor',
                                roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                                out_channels=32, featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(type='Shared2FCBBoxHead', in_channels=32, fc_out_channels=128, roi_feat_size=7,
                       num_classes=80,
                       bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                       target_stds=[0.1, 0.1, 0.2, 0.2]),
                       reg_class_agnostic=False)),
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)))
dataset_type = 'CocoDataset'
img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiScaleFlipAug', img_scale=(1333, 800), flip=False,
         transforms=[dict(type='Resize', keep_ratio=True), dict(type='RandomFlip'),
                     dict(type='Normalize', **img_norm_cfg), dict(type='Pad', size_divisor=32),
                     dict(type='ImageToTensor', keys=['img']), dict(type='Collect', keys=['img'])])
]
data = dict(samples_per_gpu=2, workers_per_gpu=2,
            test=dict(type=dataset_type, ann_file='annotations/instances_val2017.json', pipeline=test_pipeline))
"""


def test_mmdetection_2x_config_layout_converts_to_the_same_model(tmp_path):
    config_file = tmp_path / "faster_rcnn_r50_fpn_1x_coco.py"
    config_file.write_text(MMDET2_CONFIG)
    from_2x = convert_checkpoint(TINY_COCO, tmp_path / "from_2x", config_path=config_file)
    embedded = convert_checkpoint(TINY_COCO, tmp_path / "embedded")
    assert from_2x.processor.to_dict() == embedded.processor.to_dict()
    ignored = {"source", "transformers_version"}
    assert {k: v for k, v in from_2x.config.to_dict().items() if k not in ignored} == {
        k: v for k, v in embedded.config.to_dict().items() if k not in ignored
    }
    assert from_2x.config.source["config"] == "faster_rcnn_r50_fpn_1x_coco.py"


def test_config_with_base_files_converts(tmp_path):
    (tmp_path / "_base_").mkdir()
    (tmp_path / "_base_" / "model.py").write_text(MMDET2_CONFIG)
    (tmp_path / "child.py").write_text(
        "_base_ = ['./_base_/model.py']\n"
        "model = dict(test_cfg=dict(rcnn=dict(score_thr=0.3, max_per_img=20)))\n"
        "img_scale = (1000, 600)\n"
        "test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=img_scale, keep_ratio=True),\n"
        "                 dict(type='PackDetInputs')]\n"
        "data = dict(test=dict(pipeline=test_pipeline))\n"
    )
    result = convert_checkpoint(TINY_COCO, tmp_path / "out", config_path=tmp_path / "child.py")
    assert result.config.rcnn_score_threshold == 0.3
    assert result.config.rcnn_max_per_img == 20
    assert result.config.rcnn_nms_iou_threshold == 0.5  # kept from the base
    assert result.processor.size == {"longest_edge": 1000, "shortest_edge": 600}


def test_checkpoint_without_config_asks_for_one(tmp_path):
    path = tmp_path / "bare.pth"
    torch.save({"state_dict": torch.load(TINY_COCO, weights_only=True)["state_dict"]}, path)
    with pytest.raises(MMDetConfigError, match="--config"):
        convert_checkpoint(path, tmp_path / "out")


def test_class_names_fall_back_to_the_dataset_when_meta_does_not_fit(tmp_path):
    result = convert_checkpoint(TINY_VOC, tmp_path / "voc")
    assert [result.config.id2label[index] for index in range(20)] == list(VOC_CLASSES)
    assert any("VOCDataset" in note for note in result.notes)
    card = (tmp_path / "voc" / "README.md").read_text()
    assert "VOCDataset" in card


def test_classes_option_overrides_and_is_checked(tmp_path):
    names = [f"thing{index}" for index in range(20)]
    (tmp_path / "names.txt").write_text("\n".join(names))
    result = convert_checkpoint(TINY_VOC, tmp_path / "out", classes=str(tmp_path / "names.txt"))
    assert result.config.id2label[19] == "thing19"
    assert result.config.label2id["thing3"] == 3
    with pytest.raises(FasterRCNNHubError, match="3 class names were given but the model has 20"):
        convert_checkpoint(TINY_VOC, tmp_path / "other", classes="a,b,c")


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    output = tmp_path / "model"
    convert_checkpoint(TINY_COCO, output)
    marker = output / "keep-me.txt"
    marker.write_text("user data")
    with pytest.raises(FasterRCNNHubError, match="already exists"):
        convert_checkpoint(TINY_VOC, output)
    assert marker.read_text() == "user data"
    convert_checkpoint(TINY_VOC, output, overwrite=True)
    assert not marker.exists()
    assert FasterRCNNForObjectDetection.from_pretrained(output).config.num_classes == 20


def test_failed_conversion_leaves_previous_output_intact(tmp_path, monkeypatch):
    from faster_rcnn_hub.conversion import convert as convert_module

    output = tmp_path / "model"
    convert_checkpoint(TINY_COCO, output)
    before = {path.name: path.read_bytes() for path in output.iterdir()}

    def fail_after_weights(folder, model, *args):
        model.save_pretrained(folder)
        raise OSError("disk full")

    monkeypatch.setattr(convert_module, "_write_folder", fail_after_weights)
    with pytest.raises(OSError, match="disk full"):
        convert_checkpoint(TINY_VOC, output, overwrite=True)
    assert {path.name: path.read_bytes() for path in output.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"]


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = torch.load(TINY_COCO, weights_only=True)
    checkpoint["meta"]["payload"] = _Payload(str(marker))
    path = tmp_path / "evil.pth"
    torch.save(checkpoint, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="could run code"):
        convert_checkpoint(path, tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "content,message",
    [(b"", "empty"), (b"this is not a checkpoint at all", "not a PyTorch checkpoint"), (None, "truncated")],
    ids=["empty", "text", "truncated"],
)
def test_unreadable_checkpoints_are_refused(tmp_path, content, message):
    path = tmp_path / "broken.pth"
    path.write_bytes(TINY_COCO.read_bytes()[:100_000] if content is None else content)
    with pytest.raises(CheckpointError, match=message):
        convert_checkpoint(path, tmp_path / "out")


def test_missing_checkpoint_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        convert_checkpoint(tmp_path / "nope.pth", tmp_path / "out")


def test_model_card_has_hub_metadata(tmp_path):
    convert_checkpoint(TINY_COCO, tmp_path / "out")
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "object-detection"
    assert "faster-rcnn" in card.data.tags
    assert card.data.datasets == ["coco"]
    source = json.loads((tmp_path / "out" / "config.json").read_text())["source"]
    assert source["sha256"] in card.text


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "faster_rcnn_hub.cli", "convert"],
        [sys.executable, str(REPO / "convert" / "convert_mmdet_checkpoint.py")],
    ],
    ids=["cli", "script"],
)
def test_command_line_converters(tmp_path, command):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run([*command, str(TINY_VOC), str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "20 classes" in done.stdout and "1000x600" in done.stdout
    code_files = {path.name for path in remote_code_files()}
    assert {path.name for path in (tmp_path / "out").iterdir()} == {
        "README.md", "config.json", "model.safetensors", "preprocessor_config.json", *code_files,
    }  # fmt: skip
    again = subprocess.run([*command, str(TINY_VOC), str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert again.returncode == 2
    assert "already exists" in again.stderr and "Traceback" not in again.stderr
    assert FasterRCNNImageProcessor.from_pretrained(tmp_path / "out").channel_order == "bgr"
