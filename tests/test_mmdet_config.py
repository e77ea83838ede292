"""Reading mmdetection configs without executing them."""

from __future__ import annotations

import pytest

from faster_rcnn_hub import MMDetConfigError
from faster_rcnn_hub.conversion import load_config_file, parse_config_text


def test_plain_config_text_with_names_unpacking_and_arithmetic():
    config = parse_config_text(
        "norm = dict(mean=[1, 2, 3], to_rgb=True)\n"
        "scale = (1333, 800)\n"
        "pipeline = [dict(type='Resize', scale=scale), dict(type='Normalize', **norm)]\n"
        "lr = 0.02 / 8 * 2\n"
        "steps = [*scale, 11]\n"
        "model = {'a': -1, **norm}\n"
    )
    assert config["pipeline"][1] == {"type": "Normalize", "mean": [1, 2, 3], "to_rgb": True}
    assert config["pipeline"][0]["scale"] == (1333, 800)
    assert config["lr"] == pytest.approx(0.005)
    assert config["steps"] == [1333, 800, 11]
    assert config["model"] == {"a": -1, "mean": [1, 2, 3], "to_rgb": True}


def test_names_are_copied_not_shared():
    config = parse_config_text("a = dict(x=[1])\nb = a\n")
    config["a"]["x"].append(2)
    assert config["b"] == {"x": [1]}


def test_base_inheritance_merges_and_deletes(tmp_path):
    (tmp_path / "base_model.py").write_text("model = dict(backbone=dict(depth=50, style='pytorch'), neck=dict(out=256))\n")
    (tmp_path / "base_data.py").write_text("data = dict(test=dict(scale=(1333, 800)))\nvalue = 1\n")
    (tmp_path / "child.py").write_text(
        "_base_ = ['base_model.py', 'base_data.py']\n"
        "model = dict(backbone=dict(depth=101), neck=dict(_delete_=True, kind='other'))\n"
        "copied = {{_base_.data.test.scale}}\n"
        "attribute = _base_.value + 1\n"
    )
    config = load_config_file(tmp_path / "child.py")
    assert config["model"] == {"backbone": {"depth": 101, "style": "pytorch"}, "neck": {"kind": "other"}}
    assert config["copied"] == (1333, 800)
    assert config["attribute"] == 2
    assert "_base_" not in config


def test_assigning_into_base_edits_the_inherited_value(tmp_path):
    # mmdetection's multi-scale configs do this: `_base_.train_dataloader.dataset.pipeline = train_pipeline`.
    (tmp_path / "base.py").write_text(
        "schedule = [dict(type='LinearLR'), dict(type='MultiStepLR', milestones=[8, 11])]\n"
        "loader = dict(dataset=dict(pipeline=['old'], root='data/'))\n"
    )
    (tmp_path / "child.py").write_text(
        "_base_ = 'base.py'\n"
        "pipeline = ['new']\n"
        "_base_.loader.dataset.pipeline = pipeline\n"
        "_base_.schedule[1].milestones = [16, 22]\n"
    )
    config = load_config_file(tmp_path / "child.py")
    assert config["loader"] == {"dataset": {"pipeline": ["new"], "root": "data/"}}
    assert config["schedule"][1] == {"type": "MultiStepLR", "milestones": [16, 22]}
    for statement, message in [
        ("_base_.missing.key = 1\n", "which the base configs do not define"),
        ("_base_.schedule[5].milestones = []\n", "which the base configs do not define"),
        ("other = dict()\nother.key = 1\n", "anything but `_base_`"),
    ]:
        (tmp_path / "bad.py").write_text("_base_ = 'base.py'\n" + statement)
        with pytest.raises(MMDetConfigError, match=message):
            load_config_file(tmp_path / "bad.py")


def test_duplicate_keys_across_bases_are_refused(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("x = 2\n")
    (tmp_path / "child.py").write_text("_base_ = ['a.py', 'b.py']\n")
    with pytest.raises(MMDetConfigError, match="both define"):
        load_config_file(tmp_path / "child.py")


def test_json_config(tmp_path):
    (tmp_path / "config.json").write_text('{"model": {"type": "FasterRCNN"}}')
    assert load_config_file(tmp_path / "config.json") == {"model": {"type": "FasterRCNN"}}


@pytest.mark.parametrize(
    "text,message",
    [
        ("import os\n", "an import"),
        ("from os import system\n", "an import"),
        ("x = __import__('os').system('true')\n", "calling `__import__"),
        ("x = open('/etc/passwd').read()\n", "calling `open"),
        ("x = (lambda: 1)()\n", "calling"),
        ("x = [1].append(2)\n", "calling `\\[1\\].append`"),
        ("def f():\n    pass\n", "FunctionDef"),
        ("x = undefined_name\n", "undefined name `undefined_name`"),
        ("x = 'a' * 10**9\n", "power this large|repetition this large"),
        ("x = ().__class__\n", "attribute access"),
        ("x = f'{1}'\n", "f-string"),
        ("x = (1,\n", "not valid Python"),
    ],
)
def test_code_is_refused_not_run(text, message, tmp_path):
    with pytest.raises(MMDetConfigError, match=message):
        parse_config_text(text)


def test_package_base_and_missing_files_are_explained(tmp_path):
    (tmp_path / "child.py").write_text("_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'\n")
    with pytest.raises(MMDetConfigError, match="needs mmdetection installed"):
        load_config_file(tmp_path / "child.py")
    with pytest.raises(MMDetConfigError, match="not found"):
        load_config_file(tmp_path / "missing.py")
    (tmp_path / "loop.py").write_text("_base_ = 'loop.py'\n")
    with pytest.raises(MMDetConfigError, match="circular"):
        load_config_file(tmp_path / "loop.py")
