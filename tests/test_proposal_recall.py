"""Proposal recall (mmdetection's `eval_recalls` definition): hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from faster_rcnn_hub.evaluation.proposal_recall import AVERAGE_RECALL_THRESHOLDS, box_iou, matched_ious, proposal_recall

SQUARE = [0.0, 0.0, 10.0, 10.0]
TALLER = [0.0, 0.0, 10.0, 12.0]  # IoU with SQUARE: 100 / 120
TALLEST = [0.0, 0.0, 10.0, 13.0]  # IoU with SQUARE 100 / 130, with TALLER 120 / 130


def test_iou_of_continuous_boxes():
    assert box_iou([SQUARE], [TALLER])[0, 0] == pytest.approx(100 / 120)
    assert box_iou([SQUARE], [[5.0, 0.0, 15.0, 10.0]])[0, 0] == pytest.approx(50 / 150)
    assert box_iou([SQUARE], [[10.0, 0.0, 20.0, 10.0]])[0, 0] == 0.0
    assert box_iou(np.zeros((0, 4)), [SQUARE]).shape == (0, 1)


def test_matching_is_one_to_one_best_pair_first():
    objects = np.array([SQUARE, TALLER])
    # One proposal: it goes to the object it overlaps best (SQUARE, IoU 1); TALLER is left without one, although
    # the same proposal overlaps it by 0.83.
    assert matched_ious(objects, np.array([SQUARE])).tolist() == [1.0, 0.0]
    # A second proposal: TALLER gets it (IoU 120 / 130), not a share of the first.
    np.testing.assert_allclose(matched_ious(objects, np.array([SQUARE, TALLEST])), [1.0, 120 / 130])
    assert matched_ious(objects, np.zeros((0, 4))).tolist() == [0.0, 0.0]


def test_recall_and_average_recall_over_a_data_set():
    objects = [np.array([SQUARE, TALLER]), np.zeros((0, 4)), np.array([[50.0, 50, 60, 60]])]
    proposals = [np.array([SQUARE, TALLEST, [30.0, 30, 40, 40]]), np.array([SQUARE]), np.zeros((0, 4))]
    table = proposal_recall(objects, proposals, budgets=[1, 2, 100], iou_thresholds=[0.5, 0.9, 0.95])
    assert table.num_objects == 3
    assert table.mean_proposals == pytest.approx(4 / 3)
    # Budget 1: SQUARE only. Budget 2 and more: TALLER too, at IoU 0.923 (found at 0.9, not at 0.95). The third
    # image's object has no proposal.
    assert table.recall == [pytest.approx([1 / 3] * 3), pytest.approx([2 / 3, 2 / 3, 1 / 3]),
                            pytest.approx([2 / 3, 2 / 3, 1 / 3])]  # fmt: skip
    assert table.at(2, 0.9) == pytest.approx(2 / 3)
    # Average recall: mean over IoU 0.5, 0.55, ..., 0.95; TALLER counts at the nine thresholds up to 0.9.
    assert AVERAGE_RECALL_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    assert table.average_recall[0] == pytest.approx(1 / 3)
    assert table.average_recall[1] == pytest.approx((9 * 2 / 3 + 1 / 3) / 10)


def test_images_of_ground_truth_and_proposals_must_agree():
    with pytest.raises(ValueError, match="2 images of ground truth but 1"):
        proposal_recall([np.zeros((0, 4))] * 2, [np.zeros((0, 4))], budgets=[1])
