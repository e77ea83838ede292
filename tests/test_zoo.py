"""The model-zoo table: generated from mmdetection's metafiles and configs, support decided by the converter."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from faster_rcnn_hub import FasterRCNNConfig, FasterRCNNImageProcessor
from faster_rcnn_hub.cli import main
from faster_rcnn_hub.conversion import config_mapping, settings_from_mmdet_config, zoo_support
from faster_rcnn_hub.zoo import UnknownModelError, find_zoo_entry_by_sha256, get_zoo_entry, zoo_entries

REPO = Path(__file__).resolve().parents[1]
METAFILES = REPO / "tools" / "zoo" / "metafiles"
# C4 and DC5: the only architectures of the table the converter refused when it was written. Support is decided
# at run time, so these may become supported; no other entry may ever be refused.
C4_AND_DC5 = {
    "faster-rcnn_r50-caffe-c4_1x_coco": "num_stages",
    "faster-rcnn_r50-caffe-c4_mstrain_1x_coco": "num_stages",
    "faster-rcnn_r50-caffe-dc5_1x_coco": "dilations",
    "faster-rcnn_r50-caffe-dc5_mstrain_1x_coco": "dilations",
    "faster-rcnn_r50-caffe-dc5_mstrain_3x_coco": "dilations",
}


def _generator():
    spec = importlib.util.spec_from_file_location("generate_zoo_table", REPO / "tools" / "generate_zoo_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _metafile_models(name: str, collection: str = "Faster R-CNN") -> list[dict]:
    data = yaml.safe_load((METAFILES / name).read_text())
    models = data["Models"] if isinstance(data, dict) else data
    return [model for model in models if model.get("In Collection") == collection]


def test_shipped_table_is_exactly_what_the_generator_builds_from_mmdetection_sources():
    generator = _generator()
    rebuilt = generator.render(generator.build_table(METAFILES, REPO / "tools" / "zoo" / "mmdet_configs" / "configs"))
    assert (REPO / "src" / "faster_rcnn_hub" / "zoo" / "model_zoo.json").read_text() == rebuilt


def test_table_holds_every_resnet_and_resnext_faster_rcnn_of_the_zoo():
    names = [entry.name for entry in zoo_entries()]
    assert len(names) == len(set(names))
    expected = [model["Name"] for model in _metafile_models("faster_rcnn.metafile.yml")]
    assert len(expected) == 28 and names[:28] == expected
    for metafile in ("objects365.metafile.yml", "openimages.metafile.yml", "resnet_strikes_back.metafile.yml"):
        assert {model["Name"] for model in _metafile_models(metafile)} <= set(names)
    assert {"faster-rcnn_r50_fpn_1x_voc0712", "faster-rcnn_r50_fpn_1x_cityscapes"} <= set(names)
    # Other backbones (RegNet, HRNet, Res2Net, ResNeSt) are not in the table.
    for metafile in ("regnet.metafile.yml", "hrnet.metafile.yml", "res2net.metafile.yml", "resnest.metafile.yml"):
        assert not {model["Name"] for model in _metafile_models(metafile)} & set(names)
    assert len(names) == 86

    for entry in zoo_entries():
        assert re.fullmatch(r"[0-9a-f]{8}", entry.sha256_prefix) and entry.url.endswith(f"-{entry.sha256_prefix}.pth")
        assert entry.mmdet_config["model"]["backbone"]["type"] in ("ResNet", "ResNeXt")
        if not entry.name.startswith("cascade-"):
            assert "train_cfg" not in entry.mmdet_config["model"]  # training-only settings are left out
        # A mask head exactly in the Mask R-CNN and Cascade Mask R-CNN entries.
        assert ("mask_head" in entry.mmdet_config["model"]["roi_head"]) == ("mask-rcnn" in entry.name), entry.name

    entry = get_zoo_entry("faster-rcnn_r50_fpn_1x_coco")
    assert entry.url == (
        "https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r50_fpn_1x_coco/"
        "faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth"
    )
    assert (entry.sha256_prefix, entry.box_ap, entry.training_data) == ("047c8118", 37.4, "COCO")
    assert entry.config_file == "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"
    voc = get_zoo_entry("faster-rcnn_r50_fpn_1x_voc0712")
    assert (voc.sha256_prefix, voc.box_ap, voc.training_data) == ("54bef0f3", 80.4, "Pascal VOC 07+12")


def test_table_holds_every_resnet_and_resnext_cascade_rcnn():
    names = [entry.name for entry in zoo_entries()]
    cascade_models = _metafile_models("cascade_rcnn.metafile.yml", "Cascade R-CNN")
    assert len(cascade_models) == 27 and [name for name in names if name.startswith("cascade-")] == [
        model["Name"] for model in cascade_models
    ]  # 10 Cascade R-CNN, then 17 Cascade Mask R-CNN
    # The other backbones' Cascade R-CNN are left out.
    for metafile in ("regnet.metafile.yml", "hrnet.metafile.yml", "res2net.metafile.yml", "resnest.metafile.yml"):
        assert not {model["Name"] for model in _metafile_models(metafile, "Cascade R-CNN")} & set(names)

    entry = get_zoo_entry("cascade-rcnn_r50_fpn_1x_coco")
    assert (entry.sha256_prefix, entry.box_ap, entry.training_data) == ("3dc56deb", 40.3, "COCO")
    assert entry.config_file == "cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py"
    for entry in zoo_entries():
        if not entry.name.startswith("cascade-"):
            continue
        assert zoo_support(entry).supported, entry.name
        # Only the stages' IoU thresholds are kept of the training settings: `cascade_stages` records them.
        assert entry.mmdet_config["model"]["train_cfg"] == {
            "rcnn": [{"assigner": {"pos_iou_thr": threshold}} for threshold in (0.5, 0.6, 0.7)]
        }, entry.name
        stages = settings_from_mmdet_config(entry.mmdet_config).model["cascade_stages"]
        assert [stage["iou_threshold"] for stage in stages] == [0.5, 0.6, 0.7], entry.name
        assert [stage["loss_weight"] for stage in stages] == [1.0, 0.5, 0.25], entry.name
        assert stages[2]["box_coder_stds"] == [0.033, 0.033, 0.067, 0.067], entry.name


def test_table_holds_every_mask_rcnn_and_cascade_mask_rcnn_of_their_metafiles_and_all_convert():
    names = [entry.name for entry in zoo_entries()]
    mask_models = [model["Name"] for model in _metafile_models("mask_rcnn.metafile.yml", "Mask R-CNN")]
    assert len(mask_models) == 21 and [name for name in names if name.startswith("mask-rcnn")] == mask_models
    # Mask R-CNN entries of other metafiles (other backbones, LVIS, ResNet strikes back) are not read.
    for metafile in ("regnet.metafile.yml", "hrnet.metafile.yml", "resnet_strikes_back.metafile.yml"):
        assert not {model["Name"] for model in _metafile_models(metafile, "Mask R-CNN")} & set(names)
    entry = get_zoo_entry("mask-rcnn_r50_fpn_1x_coco")
    assert (entry.sha256_prefix, entry.box_ap, entry.mask_ap, entry.training_data) == ("d4b0c5d6", 38.2, 34.7, "COCO")
    cascade = get_zoo_entry("cascade-mask-rcnn_r50_fpn_1x_coco")
    assert (cascade.box_ap, cascade.mask_ap) == (41.2, 35.9)
    masked = [entry for entry in zoo_entries() if "mask-rcnn" in entry.name]
    assert len(masked) == 38
    for entry in masked:
        assert zoo_support(entry).supported, entry.name
        settings = settings_from_mmdet_config(entry.mmdet_config).model
        assert settings["mask_head"]["roi_output_size"] == 14 and settings["mask_head"]["mask_threshold"] == 0.5
        assert ("cascade_stages" in settings) == entry.name.startswith("cascade-"), entry.name


def test_every_supported_entry_yields_a_valid_model_and_processor_config():
    for entry in zoo_entries():
        if not zoo_support(entry).supported:
            continue
        settings = settings_from_mmdet_config(entry.mmdet_config)
        config = FasterRCNNConfig(**settings.model, num_classes=settings.num_classes)
        FasterRCNNImageProcessor(**settings.processor)
        head = entry.mmdet_config["model"]["roi_head"]["bbox_head"]
        head = head[-1] if isinstance(head, list) else head  # a cascade's stages share the class count
        assert config.num_classes == head["num_classes"], entry.name
        assert config.backbone_groups == entry.mmdet_config["model"]["backbone"].get("groups", 1), entry.name


def test_support_is_decided_by_the_converter_at_run_time(monkeypatch):
    for entry in zoo_entries():
        status = zoo_support(entry)
        if entry.name in C4_AND_DC5 and not status.supported:
            assert C4_AND_DC5[entry.name] in status.reason, entry.name  # the reason names the field
        else:
            assert status.supported and status.reason is None, entry.name
    # When the converter learns an architecture, its entries flip without any change to the table.
    monkeypatch.setattr(config_mapping, "settings_from_mmdet_config", lambda config: None)
    assert all(zoo_support(entry).supported for entry in zoo_entries())


def test_entries_are_found_by_name_alias_or_checksum_and_unknown_names_get_suggestions():
    entry = get_zoo_entry("faster-rcnn_r50_fpn_mstrain_3x_coco")
    assert get_zoo_entry("faster-rcnn_r50_fpn_ms-3x_coco") is entry  # the config file's name works too
    assert find_zoo_entry_by_sha256("e10bd31c" + "0" * 56) is entry
    assert find_zoo_entry_by_sha256("f" * 64) is None
    with pytest.raises(UnknownModelError, match="Did you mean faster-rcnn_r50_fpn_1x_coco"):
        get_zoo_entry("faster-rcnn_r50_fpn_1x_cocoo")


def test_zoo_command_lists_the_table_with_support(capsys):
    assert main(["zoo"]) == 0
    printed = capsys.readouterr().out
    for entry in zoo_entries():
        assert entry.name in printed
    supported = sum(zoo_support(entry).supported for entry in zoo_entries())
    assert f"86 checkpoints, {supported} convert" in printed
    for entry in zoo_entries():
        line = next(line for line in printed.splitlines() if line.startswith(f"{entry.name} "))
        assert line.endswith("yes") == zoo_support(entry).supported, line

    assert main(["zoo", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == [entry.name for entry in zoo_entries()]
    assert sum(row["supported"] for row in rows) == supported
    assert all("mmdet_config" not in row for row in rows)
