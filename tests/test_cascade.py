"""Cascade R-CNN: each stage's boxes and logits equal mmdetection's, on the fused and unfused paths; the cascade
config is validated and converted strictly; a converted cascade trains (forward with labels) and fine-tunes on other
classes (test_cascade_training.py checks the stage losses themselves).

The final detections of `tiny_cascade_r50_fpn_coco` (proposals, detections, end to end, pipeline) are checked with
every other case in test_parity.py.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import (
    IMAGES,
    MMDET,
    assert_manifest_keys_fill_the_model,
    case_images,
    load_manifest,
    reference,
    resized_image_path,
    write_manifest_config,
)
from faster_rcnn_hub import FasterRCNNConfig, FasterRCNNForObjectDetection
from faster_rcnn_hub.conversion import load_config_file, settings_from_mmdet_config
from faster_rcnn_hub.errors import InvalidConfigError, UnsupportedArchitectureError
from isolated_python import REMOTE_DRIVER, run_isolated
from parity import assert_matches, compare_detections

CASE = "tiny_cascade_r50_fpn_coco"
# The fixtures' cascade rule (README-mask-cascade.md): per stage, boxes within 0.05 px and logits within 1e-3.
MAX_STAGE_BOX_DIFFERENCE = 0.05
MAX_STAGE_LOGIT_DIFFERENCE = 1e-3
NUM_STAGES = 3


def _max_difference(found: torch.Tensor, expected: np.ndarray) -> float:
    return (found.double() - torch.from_numpy(expected).double()).abs().max().item()


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("image", case_images(CASE))
def test_every_stage_matches_mmdetection(loaded_model, image, fused):
    """Each stage's RoIs, raw class logits and refined boxes, and the logits averaged over the stages, on the first
    50 RPN proposals of mmdetection's own resized image."""
    model, processor = loaded_model(CASE)
    expected = np.load(MMDET / CASE / f"{image}.stage_boxes.npz")
    inputs = processor(images=[Image.open(resized_image_path(CASE, image))])
    model.enable_fused_inference(fused)
    try:
        with torch.no_grad():
            # The processor's batch canvas is larger than this image's own padding, which the model crops to.
            padded_height, padded_width = inputs["padded_sizes"][0].tolist()
            pyramid = model.fpn(model.backbone(inputs["pixel_values"][..., :padded_height, :padded_width]))
            stages = model.roi_heads.run_stages(pyramid, [torch.from_numpy(expected["rois_0"])], inputs["image_sizes"])
    finally:
        model.enable_fused_inference(True)
    assert len(stages) == NUM_STAGES
    differences = {}
    for index, stage in enumerate(stages):
        differences[f"rois_{index}"] = _max_difference(stage.rois[0], expected[f"rois_{index}"])
        differences[f"boxes_{index}"] = _max_difference(stage.boxes[0], expected[f"boxes_{index}"])
        differences[f"cls_logits_{index}"] = _max_difference(stage.class_logits[0], expected[f"cls_logits_{index}"])
    mean_logits = sum(stage.class_logits[0] for stage in stages) / float(NUM_STAGES)
    differences["avg_logits"] = _max_difference(mean_logits, expected["avg_logits"])
    too_far = {
        name: value
        for name, value in differences.items()
        if value > (MAX_STAGE_LOGIT_DIFFERENCE if "logits" in name else MAX_STAGE_BOX_DIFFERENCE)
    }
    assert not too_far, f"{image}: stage outputs differ from mmdetection's: {too_far}"


def test_unfused_detections_match_mmdetection(loaded_model):
    """The final detections on the unfused path (test_parity.py checks the default, fused one)."""
    model, processor = loaded_model(CASE)
    image = case_images(CASE)[0]
    expected = reference(CASE, image)
    inputs = processor(images=[Image.open(resized_image_path(CASE, image))])
    inputs["original_sizes"] = torch.tensor([expected["ori_shape"]])
    model.enable_fused_inference(False)
    try:
        with torch.no_grad():
            outputs = model(**inputs)
    finally:
        model.enable_fused_inference(True)
    count = int(outputs.num_detections[0])
    comparison = compare_detections(
        expected["boxes"], expected["scores"], expected["labels"],
        outputs.pred_boxes[0, :count], outputs.scores[0, :count].tolist(), outputs.labels[0, :count].tolist(),
    )  # fmt: skip
    assert_matches(comparison, f"{CASE}/{image} unfused detections")


def test_forward_with_labels_gives_every_stages_weighted_losses(loaded_model):
    model, processor = loaded_model(CASE)
    inputs = processor(images=[Image.new("RGB", (64, 48))])
    labels = [{"class_labels": torch.tensor([0]), "boxes": torch.tensor([[1.0, 1.0, 20.0, 20.0]])}]
    with torch.no_grad():
        outputs = model(**inputs, labels=labels)
    stage_terms = [f"s{stage}.{name}" for stage in range(NUM_STAGES) for name in ("loss_cls", "loss_bbox")]
    assert sorted(outputs.loss_dict) == sorted(["loss_rpn_cls", "loss_rpn_bbox", *stage_terms])
    assert all(torch.isfinite(value) for value in outputs.loss_dict.values())
    assert outputs.loss == pytest.approx(sum(outputs.loss_dict.values()).item())


def test_finetuning_a_cascade_on_other_classes_reinitialises_every_stages_class_layer(converted_model):
    from faster_rcnn_hub.training.model_setup import model_for_finetuning

    folder = converted_model(CASE)
    original = FasterRCNNForObjectDetection.from_pretrained(folder).state_dict()
    start = model_for_finetuning(folder, ["shape"])
    changed = sorted(key for key, value in start.model.state_dict().items() if value.shape != original[key].shape)
    assert changed == [f"roi_heads.stages.{stage}.box_predictor.cls_score.{name}"
                       for stage in range(NUM_STAGES) for name in ("bias", "weight")]  # fmt: skip
    # The class-agnostic regression and everything else are kept.
    kept = [key for key in original if key not in changed]
    assert all(torch.equal(start.model.state_dict()[key], original[key]) for key in kept)


def _stage(stds=(0.1, 0.1, 0.2, 0.2), iou_threshold=0.5, loss_weight=1.0) -> dict:
    return {"box_coder_stds": list(stds), "iou_threshold": iou_threshold, "loss_weight": loss_weight}


def test_cascade_config_round_trips_and_builds_one_head_per_stage(tmp_path):
    stages = [_stage(), _stage((0.05, 0.05, 0.1, 0.1), 0.6, 0.5), _stage((0.033, 0.033, 0.067, 0.067), 0.7, 0.25)]
    config = FasterRCNNConfig(cascade_stages=stages, reg_class_agnostic=True, num_classes=3)
    config.save_pretrained(tmp_path)
    loaded = FasterRCNNConfig.from_pretrained(tmp_path)
    assert loaded.cascade_stages == stages and loaded.num_cascade_stages == 3
    with torch.device("meta"):
        model = FasterRCNNForObjectDetection(loaded)
    assert [stage.box_coder.stds for stage in model.roi_heads.stages] == [tuple(s["box_coder_stds"]) for s in stages]
    assert model.roi_heads.box_coder is model.roi_heads.stages[-1].box_coder
    assert model.roi_heads.stages[0].box_predictor.bbox_pred.out_features == 4  # class-agnostic


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"cascade_stages": []}, r"cascade_stages must be a non-empty list"),
        ({"cascade_stages": [{"box_coder_stds": [0.1, 0.1, 0.2, 0.2]}]}, r"cascade_stages\[0\] must be a mapping"),
        ({"cascade_stages": [_stage(stds=(0.1, 0.1, 0.2))]}, r"cascade_stages\[0\].box_coder_stds must be 4 positive"),
        ({"cascade_stages": [_stage(), _stage(iou_threshold=1.5)]}, r"cascade_stages\[1\].iou_threshold must be \["),
        ({"cascade_stages": [_stage(loss_weight="1")]}, r"cascade_stages\[0\].loss_weight must be a number >= 0"),
        ({"cascade_stages": [_stage()], "reg_class_agnostic": False}, r"cascade_stages needs reg_class_agnostic=true"),
    ],
    ids=["empty", "missing-keys", "three-stds", "iou-above-one", "string-weight", "class-specific-regression"],
)
def test_bad_cascade_configs_are_refused_naming_the_field(settings, message):
    settings = {"reg_class_agnostic": True, **settings}
    with pytest.raises(InvalidConfigError, match=message):
        FasterRCNNConfig(**settings)


def test_zoo_cascade_config_converts_every_key(tmp_path):
    """mmdetection's full-size Cascade R-CNN config: its stages, and a place of the right shape for each of its
    checkpoint's keys (the model is built on the meta device: no weights are made)."""
    manifest = load_manifest("cascade_r50_fpn_1x_coco")
    settings = settings_from_mmdet_config(load_config_file(write_manifest_config(manifest, tmp_path / "cascade.py")))
    assert settings.model["cascade_stages"] == [
        _stage((0.1, 0.1, 0.2, 0.2), 0.5, 1.0),
        _stage((0.05, 0.05, 0.1, 0.1), 0.6, 0.5),
        _stage((0.033, 0.033, 0.067, 0.067), 0.7, 0.25),
    ]
    config = FasterRCNNConfig(num_classes=settings.num_classes, **settings.model)
    assert_manifest_keys_fill_the_model(manifest, config)


@pytest.mark.parametrize(
    "name,change,message",
    [
        (
            "cascade_r50_fpn_1x_coco",
            lambda cfg: cfg["roi_head"]["bbox_head"][1].update(reg_class_agnostic=False),
            r"bbox_head.1.reg_class_agnostic` must be True",
        ),
        (
            "cascade_r50_fpn_1x_coco",
            lambda cfg: cfg["roi_head"]["bbox_head"][2].update(fc_out_channels=512),
            r"stages' box heads differ",
        ),
        ("cascade_r50_fpn_1x_coco", lambda cfg: cfg["roi_head"].update(type="StandardRoIHead"), r"CascadeRoIHead"),
    ],
    ids=["class-specific-stage", "stages-differ", "standard-roi-head"],
)
def test_unsupported_cascade_configs_are_refused_naming_the_field(name, change, message, tmp_path):
    manifest = copy.deepcopy(load_manifest(name))
    change(manifest["model_cfg"])
    with pytest.raises(UnsupportedArchitectureError, match=message):
        settings_from_mmdet_config(load_config_file(write_manifest_config(manifest, tmp_path / f"{name}.py")))


def test_converted_folder_says_it_is_a_cascade_model(converted_model):
    card = (converted_model(CASE) / "README.md").read_text()
    assert "# Cascade R-CNN ResNet-50 FPN" in card and "A Cascade R-CNN (ResNet-50, FPN)" in card
    assert "3 cascade stages of 2 FC x 128 (training IoU 0.5/0.6/0.7)" in card
    saved = json.loads((converted_model(CASE) / "config.json").read_text())
    assert [stage["box_coder_stds"] for stage in saved["cascade_stages"]] == [
        [0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]
    ]  # fmt: skip


def test_converted_folder_runs_as_remote_code_with_mmdetection_detections(converted_model, tmp_path):
    """Without this package: the folder's own code (cascade_roi_heads.py carried beside the modeling module) gives
    mmdetection's detections from the original image, through the model and through `pipeline`."""
    folder = converted_model(CASE)
    assert (folder / "cascade_roi_heads.py").is_file()
    image = "camera"
    driver = tmp_path / "driver.py"
    driver.write_text(REMOTE_DRIVER)
    done = run_isolated(driver, str(folder), str(IMAGES / f"{image}.png"), tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    remote = json.loads(done.stdout.strip().splitlines()[-1])["folders"][str(folder)]
    expected = reference(CASE, image)
    found = remote["model"][0]
    comparison = compare_detections(
        expected["boxes"], expected["scores"], expected["labels"], found["boxes"], found["scores"], found["labels"]
    )
    assert_matches(comparison, f"remote-code {CASE}/{image}")
    assert [item["score"] for item in remote["pipeline"][0]] == found["scores"]
