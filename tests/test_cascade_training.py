"""Cascade R-CNN training: each stage's losses equal mmdetection's formulas on a handmade case, the stages'
IoU thresholds and loss weights come from `config.cascade_stages`, and `train` trains a tiny cascade."""

from __future__ import annotations

import json
import math

import pytest
import torch
from training_helpers import tiny_config, tiny_dataset

from faster_rcnn_hub import FasterRCNNForObjectDetection
from faster_rcnn_hub.cli import main
from faster_rcnn_hub.models.faster_rcnn.training_settings import TrainingSettings
from faster_rcnn_hub.training.cascade_loss import cascade_roi_losses, refine_rois, stage_sampling
from faster_rcnn_hub.training.targets import roi_targets

MMDET_STAGES = [
    {"box_coder_stds": [0.1, 0.1, 0.2, 0.2], "iou_threshold": 0.5, "loss_weight": 1.0},
    {"box_coder_stds": [0.05, 0.05, 0.1, 0.1], "iou_threshold": 0.6, "loss_weight": 0.5},
    {"box_coder_stds": [0.033, 0.033, 0.067, 0.067], "iou_threshold": 0.7, "loss_weight": 0.25},
]
OTHER_STAGES = [
    {"box_coder_stds": [0.2, 0.2, 0.3, 0.3], "iou_threshold": 0.6, "loss_weight": 2.0},
    {"box_coder_stds": [0.1, 0.1, 0.2, 0.2], "iou_threshold": 0.8, "loss_weight": 0.1},
]
GT_BOX = [10.0, 10.0, 40.0, 40.0]
GT_CLASS = 1
# IoU with the ground truth: 0.567, 0.667, 0.9 and 0 (the first three are positives from thresholds 0.5, 0.6, 0.7).
PROPOSALS = [[10.0, 10.0, 40.0, 27.0], [10.0, 10.0, 40.0, 30.0], [10.0, 10.0, 40.0, 37.0], [45.0, 45.0, 60.0, 60.0]]
IMAGE_SIZE = (64, 64)


def _cascade_model(stages):
    torch.manual_seed(0)
    return FasterRCNNForObjectDetection(tiny_config(cascade_stages=stages, reg_class_agnostic=True)).eval()


def _iou(box, other):
    width = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
    height = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
    overlap = width * height
    area = (box[2] - box[0]) * (box[3] - box[1]) + (other[2] - other[0]) * (other[3] - other[1])
    return overlap / (area - overlap)


def _deltas(box, target, stds):
    """mmdetection's DeltaXYWHBBoxCoder.encode, by hand (means 0)."""
    width, height = box[2] - box[0], box[3] - box[1]
    target_width, target_height = target[2] - target[0], target[3] - target[1]
    raw = [((target[0] + target[2]) - (box[0] + box[2])) / 2 / width,
           ((target[1] + target[3]) - (box[1] + box[3])) / 2 / height,
           math.log(target_width / width), math.log(target_height / height)]  # fmt: skip
    return [value / std for value, std in zip(raw, stds)]


def _smooth_l1(value, beta=1.0):
    value = abs(value)
    return 0.5 * value * value / beta if value < beta else value - 0.5 * beta


def _expected_losses(stages, logits):
    """mmdetection's CascadeRoIHead.loss on this case, where every stage predicts `logits` and zero deltas: the
    refined RoIs are the sampled ones, so each stage sees the ground truth (added by its sampler) and the four
    proposals, and its positives are those at or above its own IoU threshold."""
    log_sum = math.log(sum(math.exp(value) for value in logits))
    expected = {}
    for index, stage in enumerate(stages):
        rois = [GT_BOX, *PROPOSALS]
        positives = [roi for roi in rois if _iou(roi, GT_BOX) >= stage["iou_threshold"]]
        negatives = len(rois) - len(positives)
        cross_entropy = len(positives) * (log_sum - logits[GT_CLASS]) + negatives * (log_sum - logits[-1])
        regression = sum(_smooth_l1(value) for roi in positives
                         for value in _deltas(roi, GT_BOX, stage["box_coder_stds"]))  # fmt: skip
        expected[f"s{index}.loss_cls"] = stage["loss_weight"] * cross_entropy / len(rois)
        expected[f"s{index}.loss_bbox"] = stage["loss_weight"] * regression / len(rois)
    return expected


@pytest.mark.parametrize("stages", [MMDET_STAGES, OTHER_STAGES], ids=["mmdetection", "other"])
def test_stage_losses_equal_a_hand_computation(stages):
    model = _cascade_model(stages)
    logits = [0.5, 2.0, -1.0, 0.0, 0.3, 1.0]  # five classes, then background
    for stage in model.roi_heads.stages:
        # Predictions that do not depend on the features: logits and (zero) deltas are the biases.
        for layer, bias in ((stage.box_predictor.cls_score, logits), (stage.box_predictor.bbox_pred, [0.0] * 4)):
            torch.nn.init.zeros_(layer.weight)
            with torch.no_grad():
                layer.bias.copy_(torch.tensor(bias))
    features = model.fpn(model.backbone(torch.randn(1, 3, *IMAGE_SIZE)))
    losses = cascade_roi_losses(
        model, features, [torch.tensor(PROPOSALS)], [torch.tensor([GT_BOX])], [torch.tensor([GT_CLASS])],
        [IMAGE_SIZE], TrainingSettings(),
    )  # fmt: skip
    expected = _expected_losses(stages, logits)
    assert sorted(losses) == sorted(expected)
    for name, value in expected.items():
        assert losses[name].item() == pytest.approx(value, rel=1e-5, abs=1e-7), name


def test_refined_rois_are_the_decoded_sampled_rois_without_the_added_ground_truth():
    model = _cascade_model(MMDET_STAGES)
    stage = model.roi_heads.stages[0]
    sampled = stage_sampling([torch.tensor(PROPOSALS)], [torch.tensor([GT_BOX])], [torch.tensor([GT_CLASS])], 0.5,
                             TrainingSettings())  # fmt: skip
    targets = [roi_targets(sample, 5, stage.box_coder) for sample in sampled]
    assert targets[0].rois.tolist()[0] == GT_BOX and targets[0].num_positives == 4
    deltas = torch.tensor([[1.0, -2.0, 0.5, 0.25]]).expand(5, 4)
    refined = refine_rois(stage, targets, sampled, deltas, [IMAGE_SIZE])[0]
    expected = []
    for roi in targets[0].rois.tolist()[1:]:  # the ground truth (first) is left out
        width, height = roi[2] - roi[0], roi[3] - roi[1]
        center_x, center_y = (roi[0] + roi[2]) / 2 + 1.0 * 0.1 * width, (roi[1] + roi[3]) / 2 - 2.0 * 0.1 * height
        new_width, new_height = width * math.exp(0.5 * 0.2), height * math.exp(0.25 * 0.2)
        box = [center_x - new_width / 2, center_y - new_height / 2,
               center_x + new_width / 2, center_y + new_height / 2]  # fmt: skip
        expected.extend(min(max(value, 0.0), 64.0) for value in box)  # clipped to the image
    assert refined.flatten().tolist() == pytest.approx(expected, abs=1e-4)


def test_train_command_trains_a_tiny_cascade_whose_checkpoint_reloads(tmp_path, capsys):
    data = tiny_dataset(tmp_path / "shapes", num_images=4)
    config_path = tmp_path / "config.json"
    config_path.write_text(tiny_config(cascade_stages=MMDET_STAGES, reg_class_agnostic=True).to_json_string())
    output = tmp_path / "run"
    code = main(["train", "--annotations", str(data / "annotations.json"), "--images", str(data / "images"),
                 "--output-dir", str(output), "--no-progress", "--config", str(config_path), "--scale", "96,96",
                 "--max-steps", "16", "--batch-size", "2", "--warmup-steps", "2", "--lr-schedule", "cosine",
                 "--log-every", "4", "--save-every", "16", "--seed", "0"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    log = json.loads((output / "training_log.json").read_text())
    records = [record for record in log["log"] if "loss" in record] if isinstance(log, dict) else log
    assert {"s0.loss_cls", "s1.loss_bbox", "s2.loss_cls", "loss_rpn_cls"} <= set(records[0])
    assert records[-1]["loss"] < 0.75 * records[0]["loss"], [record["loss"] for record in records]
    # The checkpoint is a Cascade R-CNN that loads and detects.
    model = FasterRCNNForObjectDetection.from_pretrained(output / "checkpoint-16").eval()
    assert model.config.cascade_stages == MMDET_STAGES and len(model.roi_heads.stages) == 3
    with torch.no_grad():
        outputs = model(pixel_values=torch.zeros(1, 3, 96, 96))
    assert outputs.pred_boxes.shape[-1] == 4
    # The alternating schedule (the Faster R-CNN paper's) is refused for a cascade, with a clear error.
    assert main(["train", "--annotations", str(data / "annotations.json"), "--images", str(data / "images"),
                 "--output-dir", str(tmp_path / "alternating"), "--no-progress", "--config", str(config_path),
                 "--max-steps", "2", "--schedule", "alternating"]) == 2  # fmt: skip
    assert "not implemented for a Cascade R-CNN" in capsys.readouterr().err
