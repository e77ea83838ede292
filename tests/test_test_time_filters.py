"""The test-time filters that decide which boxes survive: the box head's score threshold and `max_per_img`
truncation, and the RPN's `min_bbox_size`, with mmdetection's semantics (strict `>` comparisons, the background
column ignored, truncation after NMS by score across classes)."""

from __future__ import annotations

import math

import torch

from faster_rcnn_hub.models.faster_rcnn.configuration_faster_rcnn import FasterRCNNConfig
from faster_rcnn_hub.models.faster_rcnn.roi_heads import RoIHeads
from faster_rcnn_hub.models.faster_rcnn.rpn import RegionProposalNetwork

# Four far-apart proposals, so that NMS removes nothing and only the filters decide.
PROPOSALS = torch.tensor(
    [[0.0, 0.0, 20.0, 20.0], [50.0, 0.0, 80.0, 30.0], [0.0, 50.0, 40.0, 90.0], [60.0, 60.0, 99.0, 99.0]]
)
# Per proposal: three classes, then background (mmdetection's last column).
SCORES = torch.tensor(
    [
        [0.24, 0.10, 0.06, 0.60],  # 0.24: just below the threshold
        [0.30, 0.26, 0.04, 0.40],  # two classes above it on one box
        [0.05, 0.05, 0.70, 0.20],
        [0.02, 0.03, 0.05, 0.90],  # background wins; 0.90 must not become a detection
    ]
)


def box_head(score_threshold: float, max_per_img: int) -> RoIHeads:
    config = FasterRCNNConfig(num_classes=3, rcnn_score_threshold=score_threshold, rcnn_max_per_img=max_per_img)
    return RoIHeads(config).eval()


def detect(head: RoIHeads):
    """The box head's test step on `SCORES`, with zero box deltas (each class's box is its proposal)."""
    logits = SCORES.log()  # softmax(log p) = p, as the rows sum to 1
    deltas = torch.zeros(len(PROPOSALS), 4 * 3)
    return head.detect(PROPOSALS, logits, deltas, (100, 100), (100, 100))


def test_box_head_keeps_scores_above_the_threshold_in_score_order():
    found = detect(box_head(score_threshold=0.25, max_per_img=100))
    assert found.labels.tolist() == [2, 0, 1]
    torch.testing.assert_close(found.scores, torch.tensor([0.70, 0.30, 0.26]))
    torch.testing.assert_close(found.boxes, PROPOSALS[[2, 1, 1]])


def test_box_head_truncates_to_max_per_img_after_ranking_all_classes():
    found = detect(box_head(score_threshold=0.05, max_per_img=4))
    # Above 0.05: 0.70, 0.30, 0.26, 0.24, 0.10, 0.06; the four best across classes and boxes stay.
    torch.testing.assert_close(found.scores, torch.tensor([0.70, 0.30, 0.26, 0.24]))
    assert found.labels.tolist() == [2, 0, 1, 0]
    torch.testing.assert_close(found.boxes, PROPOSALS[[2, 1, 1, 0]])


def test_box_head_threshold_is_strict_as_in_mmdetection():
    """mmdetection keeps `score > score_thr`: a score equal to the threshold is dropped."""
    head = box_head(score_threshold=0.25, max_per_img=100)
    boxes = PROPOSALS[:2].repeat_interleave(3, dim=0).reshape(2, 12)
    scores = torch.tensor([[0.25, 0.125, 0.125, 0.5], [0.5, 0.0, 0.0, 0.5]])  # exact in float32
    found = head._multiclass_nms(boxes, scores)
    assert found.labels.tolist() == [0] and found.scores.tolist() == [0.5]


def rpn_proposals(min_bbox_size: float, max_per_img: int = 100) -> tuple[list[list[float]], list[float]]:
    """Proposals from anchors of chosen sizes with zero deltas (each proposal is its anchor)."""
    anchors = torch.tensor(
        [
            [0.0, 0.0, 8.0, 30.0],  # width exactly 8
            [20.0, 0.0, 28.5, 30.0],  # width 8.5
            [40.0, 0.0, 70.0, 7.0],  # height 7
            [40.0, 40.0, 60.0, 60.0],  # 20 x 20
            [80.0, 80.0, 81.0, 81.0],  # 1 x 1
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    config = FasterRCNNConfig(rpn_min_bbox_size=min_bbox_size, rpn_max_per_img=max_per_img, rpn_nms_pre=1000)
    rpn = RegionProposalNetwork(config).eval()
    logits = torch.log(scores / (1 - scores)).reshape(1, 1, -1)  # sigmoid(logit) = score; one anchor per cell
    deltas = torch.zeros(4, 1, len(anchors))
    proposals = rpn.propose([logits], [deltas], [anchors], (100, 100))
    return proposals.boxes.tolist(), proposals.scores.tolist()


def test_rpn_drops_proposals_not_wider_and_taller_than_min_bbox_size():
    boxes, scores = rpn_proposals(min_bbox_size=8)
    assert boxes == [[20.0, 0.0, 28.5, 30.0], [40.0, 40.0, 60.0, 60.0]]
    assert all(math.isclose(found, wanted, rel_tol=1e-6) for found, wanted in zip(scores, [0.8, 0.6]))


def test_rpn_keeps_every_box_at_size_zero_and_truncates_to_max_per_img():
    boxes, _ = rpn_proposals(min_bbox_size=0)
    assert len(boxes) == 5
    boxes, _ = rpn_proposals(min_bbox_size=0.5, max_per_img=3)
    assert boxes == [[0.0, 0.0, 8.0, 30.0], [20.0, 0.0, 28.5, 30.0], [40.0, 0.0, 70.0, 7.0]]
