"""FasterRCNNConfig: defaults, serialization and validation of every field."""

from __future__ import annotations

import json

import pytest

from faster_rcnn_hub import FasterRCNNConfig, FasterRCNNForObjectDetection, InvalidConfigError


def test_defaults_describe_mmdetection_r50_fpn_coco():
    config = FasterRCNNConfig()
    assert config.model_type == "faster_rcnn"
    assert config.num_classes == 80
    assert config.backbone_out_channels == [256, 512, 1024, 2048]
    assert config.num_anchors_per_location == 3
    assert (config.rpn_nms_pre, config.rpn_max_per_img, config.rpn_nms_iou_threshold) == (1000, 1000, 0.7)
    assert (config.rcnn_score_threshold, config.rcnn_nms_iou_threshold, config.rcnn_max_per_img) == (0.05, 0.5, 100)


def test_num_classes_and_id2label_agree():
    assert FasterRCNNConfig(num_classes=20).num_classes == 20
    named = FasterRCNNConfig(id2label={0: "cat", 1: "dog"})
    assert named.num_classes == 2
    with pytest.raises(InvalidConfigError, match="num_classes=3 disagrees"):
        FasterRCNNConfig(num_classes=3, id2label={0: "cat", 1: "dog"})


def test_resnext_and_basic_block_widths():
    resnext = FasterRCNNConfig(backbone_depth=101, backbone_groups=32, backbone_base_width=8)
    assert resnext.block_type == "bottleneck" and resnext.stage_blocks == [3, 4, 23, 3]
    resnet18 = FasterRCNNConfig(backbone_depth=18)
    assert resnet18.block_type == "basic" and resnet18.backbone_out_channels == [64, 128, 256, 512]


C4 = dict(
    backbone_num_stages=3, backbone_strides=[1, 2, 2], backbone_dilations=[1, 1, 1], backbone_out_indices=[2],
    neck_type="none", anchor_scales=[2, 4, 8, 16, 32], anchor_strides=[16], roi_featmap_strides=[16],
    roi_output_size=14, roi_head_type="shared_res5",
)  # fmt: skip
DC5 = dict(
    backbone_strides=[1, 2, 2, 1], backbone_dilations=[1, 1, 1, 2], backbone_out_indices=[3], neck_type="none",
    anchor_scales=[2, 4, 8, 16, 32], anchor_strides=[16], roi_featmap_strides=[16],
)  # fmt: skip


def test_single_map_layouts_c4_and_dc5():
    c4 = FasterRCNNConfig(**C4)
    assert (c4.feature_channels, c4.num_feature_levels, c4.backbone_out_strides) == (1024, 1, [16])
    assert c4.shared_res5_out_size == 7
    dc5 = FasterRCNNConfig(**DC5)
    assert (dc5.feature_channels, dc5.num_feature_levels, dc5.backbone_out_strides) == (2048, 1, [16])
    with pytest.raises(InvalidConfigError, match=r"anchor_strides \[32\] must be the stride of the backbone output"):
        FasterRCNNConfig(**{**DC5, "anchor_strides": [32], "roi_featmap_strides": [32]})
    with pytest.raises(InvalidConfigError, match="use neck_type='none'"):
        FasterRCNNConfig(**{**C4, "neck_type": "fpn", "fpn_num_outs": 1})


def test_json_round_trip(tmp_path):
    config = FasterRCNNConfig(backbone_style="caffe", rpn_nms_pre=500, id2label={0: "a", 1: "b"})
    config.save_pretrained(tmp_path)
    loaded = FasterRCNNConfig.from_pretrained(tmp_path)
    # The saved config points transformers' Auto classes at the model code saved beside it (test_saving.py).
    saved = loaded.to_dict()
    assert set(saved.pop("auto_map")) == {"AutoConfig", "AutoModelForObjectDetection", "AutoImageProcessor"}
    assert saved == config.to_dict()
    assert loaded.id2label == {0: "a", 1: "b"}


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("backbone_depth", 42, "backbone_depth must be one of"),
        ("backbone_style", "keras", "backbone_style must be one of"),
        ("fpn_out_channels", -256, r"fpn_out_channels=-256 is out of range"),
        ("rpn_nms_iou_threshold", 1.5, "rpn_nms_iou_threshold=1.5 is out of range"),
        ("rcnn_max_per_img", 2.5, "rcnn_max_per_img must be an integer"),
        ("anchor_strides", [4, 8, "16", 32, 64], "anchor_strides must hold integers"),
        ("anchor_strides", [4, 8, 16], "anchor_strides must have 5 entries"),
        ("box_coder_stds", [0.1, 0.1, 0.0, 0.2], "box_coder_stds entry 0.0 must be greater than 0"),
        ("roi_featmap_strides", [8, 16, 32, 64], "roi_featmap_strides"),
        ("backbone_groups", 32, "needs a Bottleneck depth"),
        ("rcnn_nms_type", "soft", "rcnn_nms_type must be one of"),
        ("rcnn_soft_nms_method", "cubic", "rcnn_soft_nms_method must be one of"),
        ("rcnn_soft_nms_sigma", 0.0, r"rcnn_soft_nms_sigma=0.0 is out of range"),
        ("neck_type", "pafpn", "neck_type must be one of"),
        ("neck_type", "none", r"neck_type='none' feeds one backbone output to the heads"),
        ("roi_head_type", "shared_res5", r"backbone must stop after four stages"),
        ("norm_eps", float("nan"), "norm_eps must be a finite number"),
        ("roi_aligned", "yes", "roi_aligned must be true or false"),
    ],
)
def test_bad_values_are_refused_naming_the_field(field, value, message):
    settings = {field: value}
    if field == "backbone_groups":
        settings["backbone_depth"] = 18
    with pytest.raises(InvalidConfigError, match=message):
        FasterRCNNConfig(**settings)


def test_tampered_config_json_is_refused_on_load(tmp_path):
    FasterRCNNForObjectDetection(FasterRCNNConfig(backbone_depth=18, backbone_base_channels=8, fpn_out_channels=8,
                                                  rpn_feat_channels=8, box_head_fc_channels=8, num_classes=2)
                                 ).save_pretrained(tmp_path)  # fmt: skip
    path = tmp_path / "config.json"
    data = json.loads(path.read_text())
    data["roi_output_size"] = -7
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidConfigError, match="roi_output_size=-7"):
        FasterRCNNForObjectDetection.from_pretrained(tmp_path)
