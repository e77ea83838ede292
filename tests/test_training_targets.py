"""mmdetection's training targets, re-derived by hand: IoU, max-IoU assignment, random sampling, losses."""

from __future__ import annotations

import math

import pytest
import torch

from faster_rcnn_hub.models.faster_rcnn.boxes import DeltaXYWHBoxCoder
from faster_rcnn_hub.errors import InvalidConfigError
from faster_rcnn_hub.training.assigner import MaxIoUAssigner, box_iou
from faster_rcnn_hub.training.losses import l1_loss, sigmoid_cross_entropy, softmax_cross_entropy
from faster_rcnn_hub.training.sampler import RandomSampler
from faster_rcnn_hub.models.faster_rcnn.training_settings import TrainingSettings
from faster_rcnn_hub.training.targets import anchor_targets, roi_targets, valid_anchor_mask


def test_box_iou_matches_hand_computation():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 10.0, 20.0, 20.0]])
    others = torch.tensor([[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 15.0, 15.0], [30.0, 30.0, 31.0, 31.0]])
    expected = torch.tensor([[100 / 200, 25 / 175, 0.0], [0.0, 25 / 175, 0.0]])
    assert torch.allclose(box_iou(boxes, others), expected)
    assert box_iou(boxes[:0], others).shape == (0, 3)


def test_assigner_follows_mmdetections_docstring_example():
    priors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 10.0, 20.0, 20.0]])
    result = MaxIoUAssigner(0.5, 0.5).assign(priors, torch.tensor([[0.0, 0.0, 10.0, 9.0]]), torch.tensor([3]))
    assert result.gt_indices.tolist() == [1, 0]
    assert result.labels.tolist() == [3, -1]


def test_assigner_steps_negative_ignored_positive_and_low_quality():
    gt_boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 110.0, 110.0]])
    candidates = torch.tensor([
        [0.0, 0.0, 10.0, 10.0],      # IoU 1 with gt 0: positive
        [0.0, 0.0, 10.0, 16.0],      # IoU 0.625 with gt 0: between thresholds, ignored
        [50.0, 50.0, 60.0, 60.0],    # IoU 0: negative
        [100.0, 100.0, 120.0, 120.0],  # IoU 0.25 with gt 1: negative, but gt 1's best: low-quality positive
        [100.0, 100.0, 120.0, 121.0],  # IoU < 0.25 with gt 1: negative
    ])  # fmt: skip
    labels = torch.tensor([4, 2])
    strict = MaxIoUAssigner(0.7, 0.3, min_pos_iou=0.3, match_low_quality=True).assign(candidates, gt_boxes, labels)
    assert strict.gt_indices.tolist() == [1, -1, 0, 0, 0]  # 0.25 < min_pos_iou: no low-quality match
    loose = MaxIoUAssigner(0.7, 0.3, min_pos_iou=0.2, match_low_quality=True).assign(candidates, gt_boxes, labels)
    assert loose.gt_indices.tolist() == [1, -1, 0, 2, 0]
    assert loose.labels.tolist() == [4, -1, -1, 2, -1]
    no_objects = MaxIoUAssigner(0.7, 0.3).assign(candidates, gt_boxes[:0], labels[:0])
    assert no_objects.gt_indices.tolist() == [0] * 5


def test_sampler_draws_at_most_its_share_of_positives_and_puts_ground_truth_first():
    gt_boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    candidates = torch.cat([gt_boxes.repeat(30, 1), torch.tensor([[50.0, 50.0, 60.0, 60.0]]).repeat(100, 1)])
    assignment = MaxIoUAssigner(0.5, 0.5).assign(candidates, gt_boxes, torch.tensor([1]))
    sampler = RandomSampler(num=32, pos_fraction=0.25, add_gt_as_proposals=True,
                            generator=torch.Generator().manual_seed(0))  # fmt: skip
    sampled = sampler.sample(assignment, candidates, gt_boxes, torch.tensor([1]))
    assert sampled.candidates.shape == (131, 4) and torch.equal(sampled.candidates[0], gt_boxes[0])
    assert sampled.pos_indices.numel() == 8 and sampled.neg_indices.numel() == 24
    assert bool((sampled.pos_indices[1:] > sampled.pos_indices[:-1]).all())  # sorted, as `unique()` leaves them
    assert sampled.pos_gt_labels.tolist() == [1] * 8 and torch.equal(sampled.pos_gt_boxes, gt_boxes.repeat(8, 1))

    # Few positives: the negatives fill up the rest.
    few = MaxIoUAssigner(0.5, 0.5).assign(candidates[28:], gt_boxes, torch.tensor([1]))
    sampled = RandomSampler(32, 0.25, add_gt_as_proposals=False).sample(few, candidates[28:], gt_boxes, torch.tensor([1]))
    assert sampled.pos_indices.tolist() == [0, 1] and sampled.neg_indices.numel() == 30


def test_losses_are_weighted_sums_over_avg_factor():
    logits = torch.tensor([0.0, 2.0, -1.0])
    targets = torch.tensor([1.0, 0.0, 1.0])
    weights = torch.tensor([1.0, 1.0, 0.0])
    expected = (math.log(2) + math.log(1 + math.exp(2.0))) / 4
    assert sigmoid_cross_entropy(logits, targets, weights, 4).item() == pytest.approx(expected, rel=1e-6)

    class_logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2])
    expected = (-math.log(math.exp(2) / (math.exp(2) + 2)) - math.log(1 / 3)) / 2
    assert softmax_cross_entropy(class_logits, labels, torch.ones(2), 2).item() == pytest.approx(expected, rel=1e-6)

    predictions = torch.tensor([[0.5, -0.5, 0.0, 1.0]])
    assert l1_loss(predictions, torch.zeros(1, 4), torch.ones(1, 4), 10).item() == pytest.approx(0.2, rel=1e-6)
    assert l1_loss(predictions[:0], torch.zeros(0, 4), torch.ones(0, 4), 10).item() == 0.0


def test_valid_anchors_cover_the_image_padded_to_32_only():
    # An 40x70 image in a 64x96 batch: valid up to 64x96 (the image padded to 32), i.e. the whole stride-8 map.
    mask = valid_anchor_mask([(8, 12), (4, 6)], [8, 16], 2, (40, 70), torch.device("cpu"))
    assert mask.shape == (8 * 12 * 2 + 4 * 6 * 2,) and bool(mask.all())
    # A 30x30 image in the same batch: valid up to 32x32, 4x4 locations at stride 8, 2x2 at stride 16.
    mask = valid_anchor_mask([(8, 12), (4, 6)], [8, 16], 2, (30, 30), torch.device("cpu"))
    level0 = mask[: 8 * 12 * 2].view(8, 12, 2)
    assert int(level0.sum()) == 4 * 4 * 2 and bool(level0[:4, :4].all())
    assert int(mask[8 * 12 * 2 :].sum()) == 2 * 2 * 2


def test_anchor_targets_mark_sampled_anchors_and_encode_positives():
    coder = DeltaXYWHBoxCoder()
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 11.0], [40.0, 40.0, 50.0, 50.0],
                            [60.0, 60.0, 70.0, 70.0]])  # fmt: skip
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    valid = torch.tensor([True, True, True, False])
    targets = anchor_targets(anchors, valid, gt, MaxIoUAssigner(0.7, 0.3, 0.3), RandomSampler(256, 0.5, False), coder)
    assert targets.objectness.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert targets.objectness_weights.tolist() == [1.0, 1.0, 1.0, 0.0]  # the invalid anchor is never sampled
    assert targets.num_samples == 3
    assert torch.allclose(targets.deltas[1], coder.encode(anchors[1:2], gt)[0])
    assert targets.delta_weights.sum(dim=1).tolist() == [4.0, 4.0, 0.0, 0.0]


def test_roi_targets_put_positives_first_with_background_last_class():
    coder = DeltaXYWHBoxCoder(stds=(0.1, 0.1, 0.2, 0.2))
    gt = torch.tensor([[10.0, 10.0, 30.0, 30.0]])
    proposals = torch.tensor([[12.0, 10.0, 30.0, 30.0], [60.0, 60.0, 80.0, 80.0]])
    assignment = MaxIoUAssigner(0.5, 0.5, 0.5, match_low_quality=False).assign(proposals, gt, torch.tensor([2]))
    sampled = RandomSampler(512, 0.25, add_gt_as_proposals=True).sample(assignment, proposals, gt, torch.tensor([2]))
    targets = roi_targets(sampled, num_classes=5, box_coder=coder)
    assert targets.num_positives == 2 and targets.labels.tolist() == [2, 2, 5]
    assert torch.equal(targets.rois, torch.cat([gt, proposals]))
    assert torch.allclose(targets.deltas[1], coder.encode(proposals[:1], gt)[0]) and targets.deltas[2].abs().sum() == 0


def test_training_settings_default_to_mmdetection_and_refuse_unknown_keys():
    settings = TrainingSettings.from_mapping(None)
    assert (settings.rpn_pos_iou_threshold, settings.rpn_neg_iou_threshold, settings.rpn_min_pos_iou) == (0.7, 0.3, 0.3)
    assert (settings.rpn_num_samples, settings.rpn_pos_fraction) == (256, 0.5)
    assert (settings.rpn_proposal_nms_pre, settings.rpn_proposal_max_per_img) == (2000, 1000)
    assert (settings.rcnn_num_samples, settings.rcnn_pos_fraction, settings.rcnn_pos_iou_threshold) == (512, 0.25, 0.5)
    assert settings.rcnn_add_gt_as_proposals and not settings.rcnn_match_low_quality
    with pytest.raises(InvalidConfigError, match="unknown keys"):
        TrainingSettings.from_mapping({"rpn_num_sample": 3})
    with pytest.raises(InvalidConfigError, match="positive integer"):
        TrainingSettings.from_mapping({"rpn_num_samples": 0})
