"""Training a Mask R-CNN: mmdetection's mask targets and loss re-derived by hand, `train` on synthetic shapes with
masks, and `evaluate` giving box and mask AP."""

from __future__ import annotations

import json
import math

import pytest
import torch
from pycocotools import mask as coco_mask
from training_helpers import tiny_config, tiny_dataset

from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor
from faster_rcnn_hub.cli import main
from faster_rcnn_hub.errors import FasterRCNNHubError
from faster_rcnn_hub.training.assigner import MaxIoUAssigner
from faster_rcnn_hub.training.mask_loss import mask_cross_entropy, mask_targets
from faster_rcnn_hub.training.model_setup import StartingPoint, with_new_mask_head
from faster_rcnn_hub.training.sampler import RandomSampler

TINY_MASK_HEAD = {"conv_channels": 16, "num_convs": 2}


def test_mask_targets_crop_the_matched_objects_mask_at_each_roi_as_mmdetection():
    # Object 0 covers columns 0-2, object 1 rows 0-1, of an 8x8 canvas. At a 4x4 target over the whole canvas each
    # target cell is the mean of a 2x2 pixel block (RoIAlign, aligned, 2x2 samples at pixel centres), binarized
    # at >= 0.5: columns 2-3 hold 0.5 of object 0 and count as foreground.
    masks = torch.zeros(2, 8, 8, dtype=torch.uint8)
    masks[0, :, :3] = 1
    masks[1, :2, :] = 1
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [-4.0, 0.0, 8.0, 8.0], [0.0, 0.0, 8.0, 8.0], [4.0, 0.0, 8.0, 4.0]])
    targets = mask_targets(boxes, torch.tensor([0, 0, 1, 0]), masks, mask_size=4)

    columns_0_to_3 = torch.tensor([[1.0, 1.0, 0.0, 0.0]] * 4)
    assert torch.equal(targets[0], columns_0_to_3)
    # The RoI is clipped to the canvas first (mmdetection's `mask_target_single`), so it crops the same.
    assert torch.equal(targets[1], columns_0_to_3)
    assert torch.equal(targets[2], torch.tensor([[1.0] * 4, [0.0] * 4, [0.0] * 4, [0.0] * 4]))
    # Columns 4-7 of object 0 are empty.
    assert torch.equal(targets[3], torch.zeros(4, 4))
    assert mask_targets(boxes[:0], torch.tensor([], dtype=torch.long), masks, mask_size=28).shape == (0, 28, 28)


def test_mask_loss_is_the_binary_cross_entropy_of_each_rois_own_class_map():
    logits = torch.tensor([
        [[[0.0, 2.0]], [[1.0, -1.0]], [[5.0, 5.0]]],
        [[[-3.0, 0.5]], [[9.0, 9.0]], [[9.0, 9.0]]],
    ])  # fmt: skip
    targets = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])

    def bce(logit: float, target: float) -> float:
        probability = 1 / (1 + math.exp(-logit))
        return -(target * math.log(probability) + (1 - target) * math.log(1 - probability))

    # RoI 0 is of class 1, RoI 1 of class 0: the mean over their 4 pixels.
    by_hand = (bce(1.0, 1.0) + bce(-1.0, 0.0) + bce(-3.0, 0.0) + bce(0.5, 1.0)) / 4
    loss = mask_cross_entropy(logits, targets, torch.tensor([1, 0]), class_agnostic=False)
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    agnostic = (bce(0.0, 1.0) + bce(2.0, 0.0) + bce(-3.0, 0.0) + bce(0.5, 1.0)) / 4
    assert mask_cross_entropy(logits, targets, torch.tensor([1, 0]), class_agnostic=True).item() == pytest.approx(
        agnostic, rel=1e-6
    )
    empty = logits[:0].requires_grad_()
    assert mask_cross_entropy(empty, targets[:0], torch.tensor([], dtype=torch.long), False).item() == 0.0


def test_sampled_positives_know_their_objects_for_the_mask_targets():
    gt_boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0]])
    candidates = torch.tensor([[21.0, 21.0, 40.0, 40.0], [0.0, 0.0, 9.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    assignment = MaxIoUAssigner(0.5, 0.5).assign(candidates, gt_boxes, torch.tensor([3, 1]))
    sampled = RandomSampler(16, 0.5, add_gt_as_proposals=True).sample(assignment, candidates, gt_boxes,
                                                                      torch.tensor([3, 1]))  # fmt: skip
    # Candidates are the two ground-truth boxes, then the proposals: positives 0, 1 (added), 2 and 3.
    assert sampled.pos_indices.tolist() == [0, 1, 2, 3]
    assert sampled.pos_gt_indices.tolist() == [0, 1, 1, 0]
    assert torch.equal(sampled.pos_gt_boxes, gt_boxes[sampled.pos_gt_indices])


@pytest.fixture(scope="module")
def mask_run(tmp_path_factory):
    """A tiny Mask R-CNN trained a few steps with `train` on synthetic shapes with masks."""
    folder = tmp_path_factory.mktemp("mask-training")
    data = tiny_dataset(folder / "shapes", num_images=6)
    config_path = folder / "config.json"
    config_path.write_text(tiny_config(mask_head=TINY_MASK_HEAD).to_json_string())
    output = folder / "run"
    code = main(["train", "--annotations", str(data / "annotations.json"), "--images", str(data / "images"),
                 "--output-dir", str(output), "--no-progress", "--config", str(config_path), "--scale", "96,96",
                 "--max-steps", "10", "--batch-size", "2", "--warmup-steps", "1", "--log-every", "1",
                 "--save-every", "10", "--optimizer", "adamw", "--lr", "0.002"])  # fmt: skip
    assert code == 0
    return data, output


def test_train_lowers_the_mask_loss_and_the_model_reloads_with_masks(mask_run):
    data, output = mask_run
    log = json.loads((output / "training_log.json").read_text())["log"]
    mask_losses = [record["loss_mask"] for record in log if "loss_mask" in record]
    assert len(mask_losses) == 10, log
    assert sum(mask_losses[-3:]) / 3 < 0.8 * sum(mask_losses[:3]) / 3, mask_losses

    model = FasterRCNNForObjectDetection.from_pretrained(str(output)).eval()
    assert model.config.mask_head["conv_channels"] == TINY_MASK_HEAD["conv_channels"]
    processor = FasterRCNNImageProcessor.from_pretrained(str(output))
    image = torch.randint(0, 255, (96, 96, 3), dtype=torch.uint8).numpy()
    with torch.no_grad():
        outputs = model(**processor(images=[image]))
    assert outputs.pred_masks is not None and outputs.pred_masks.shape[-2:] == (28, 28)


def test_evaluate_reports_box_and_mask_ap_of_a_mask_model(mask_run, tmp_path, capsys):
    data, output = mask_run
    results, metrics = tmp_path / "results.json", tmp_path / "metrics.json"
    code = main(["evaluate", "--model", str(output), "--annotations", str(data / "annotations.json"),
                 "--images", str(data / "images"), "--results-json", str(results), "--metrics-json", str(metrics)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "COCO box AP" in printed and "COCO mask AP" in printed
    values = json.loads(metrics.read_text())
    assert {"AP", "segm_AP", "segm_AP50"} <= set(values)
    detections = json.loads(results.read_text())
    assert detections, "the model detects nothing"
    images = {image["id"]: image for image in json.loads((data / "annotations.json").read_text())["images"]}
    for detection in detections:
        # Each detection's pasted mask, as RLE of its whole image, inside its box (plus the pasting's rounding).
        image = images[detection["image_id"]]
        assert detection["segmentation"]["size"] == [image["height"], image["width"]]
        decoded = coco_mask.decode(detection["segmentation"])
        rows, columns = decoded.nonzero()
        if rows.size:
            x, y, width, height = detection["bbox"]
            assert columns.min() >= math.floor(x) - 1 and columns.max() <= math.ceil(x + width) + 1
            assert rows.min() >= math.floor(y) - 1 and rows.max() <= math.ceil(y + height) + 1


def test_train_refuses_a_mask_model_on_annotations_without_segmentation(tmp_path, capsys):
    data = tiny_dataset(tmp_path / "shapes", num_images=2)
    coco = json.loads((data / "annotations.json").read_text())
    del coco["annotations"][1]["segmentation"]
    stripped = tmp_path / "boxes_only.json"
    stripped.write_text(json.dumps(coco))
    config_path = tmp_path / "config.json"
    config_path.write_text(tiny_config(mask_head=TINY_MASK_HEAD).to_json_string())
    output = tmp_path / "run"
    code = main(["train", "--annotations", str(stripped), "--images", str(data / "images"), "--output-dir",
                 str(output), "--no-progress", "--config", str(config_path), "--max-steps", "1"])  # fmt: skip
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "error:" in error[0], error
    assert "Mask R-CNN" in error[0] and "no segmentation" in error[0]
    assert f"ids [{coco['annotations'][1]['id']}]" in error[0]
    assert not any(output.glob("checkpoint-*"))


def test_mask_head_channels_adds_a_mask_head_only_to_a_model_to_fine_tune(tmp_path, capsys):
    data = tiny_dataset(tmp_path / "shapes", num_images=2)
    config_path = tmp_path / "config.json"
    config_path.write_text(tiny_config().to_json_string())
    code = main(["train", "--annotations", str(data / "annotations.json"), "--images", str(data / "images"),
                 "--output-dir", str(tmp_path / "run"), "--config", str(config_path), "--mask-head-channels", "8"])
    assert code == 2
    assert "--mask-head-channels adds a mask head to the model given with --model" in capsys.readouterr().err


def test_a_new_mask_head_keeps_every_weight_of_the_box_model(tmp_path):
    torch.manual_seed(0)
    box_model = FasterRCNNForObjectDetection(tiny_config())
    start = with_new_mask_head(StartingPoint(box_model, FasterRCNNImageProcessor()), conv_channels=8, seed=0)
    assert start.model.config.mask_head["conv_channels"] == 8 and "new mask head" in start.notes[-1]
    new_state = start.model.state_dict()
    for key, value in box_model.state_dict().items():
        assert torch.equal(new_state[key], value), key
    assert {key for key in new_state if key not in box_model.state_dict()} == {
        key for key in new_state if key.startswith("roi_heads.mask_head.")
    }
    with pytest.raises(FasterRCNNHubError, match="already has a mask head"):
        with_new_mask_head(start, conv_channels=8, seed=0)
