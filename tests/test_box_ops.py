"""Box coding, anchors and NMS follow mmdetection/mmcv exactly."""

from __future__ import annotations

import math

import torch

from faster_rcnn_hub.anchors import AnchorGenerator
from faster_rcnn_hub.box_coder import DeltaXYWHBoxCoder
from faster_rcnn_hub.nms import batched_nms, nms


def test_decode_matches_mmdetection_documented_example():
    # The example in mmdetection's delta2bbox docstring.
    rois = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 5.0, 5.0]])
    deltas = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 2.0, -1.0], [0.7, -1.9, -0.5, 0.3]])
    decoded = DeltaXYWHBoxCoder().decode(rois, deltas, max_shape=(32, 32))
    expected = torch.tensor(
        [[0.0, 0.0, 1.0, 1.0], [0.1409, 0.1409, 2.8591, 2.8591], [0.0, 0.3161, 4.1945, 0.6839], [5.0, 5.0, 5.0, 5.0]]
    )
    assert torch.allclose(decoded, expected, atol=1e-4)


def test_encode_inverts_decode_and_size_deltas_are_clamped():
    coder = DeltaXYWHBoxCoder(stds=(0.1, 0.1, 0.2, 0.2))
    references = torch.tensor([[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 8.0, 4.0]])
    targets = torch.tensor([[12.0, 18.0, 61.0, 70.0], [1.0, 1.0, 5.0, 3.0]])
    assert torch.allclose(coder.decode(references, coder.encode(references, targets)), targets, atol=1e-4)
    huge = coder.decode(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([[0.0, 0.0, 1e3, 1e3]]))
    assert torch.allclose(huge[0, 2] - huge[0, 0], torch.tensor(10 * 1000 / 16), rtol=1e-5)


def test_decode_per_class_deltas_and_clipping():
    coder = DeltaXYWHBoxCoder()
    decoded = coder.decode(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([[0.0] * 4 + [2.0, 0.0, 0.0, 0.0]]), (8, 9))
    assert decoded.tolist() == [[0.0, 0.0, 9.0, 8.0, 9.0, 0.0, 9.0, 8.0]]


def test_anchors_follow_mmdetection_layout():
    generator = AnchorGenerator(strides=[4], scales=[8], ratios=[0.5, 1.0, 2.0])
    (anchors,) = generator.grid_anchors([(2, 3)], device=torch.device("cpu"))
    assert anchors.shape == (2 * 3 * 3, 4)
    half_width = 4 * 8 / math.sqrt(0.5) / 2  # ratio 0.5: wider than tall
    assert torch.allclose(anchors[0], torch.tensor([-half_width, -half_width / 2, half_width, half_width / 2]))
    assert torch.allclose(anchors[1], torch.tensor([-16.0, -16.0, 16.0, 16.0]))
    # (row, column, anchor) order: the next location is one stride to the right.
    assert torch.allclose(anchors[3] - anchors[0], torch.tensor([4.0, 0.0, 4.0, 0.0]))
    assert torch.allclose(anchors[9] - anchors[0], torch.tensor([0.0, 4.0, 0.0, 4.0]))


def test_nms_keeps_mmcv_order_and_semantics():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert nms(boxes, scores, 0.99).tolist() == [3, 1, 2]  # identical boxes have IoU 1 > 0.99
    assert nms(boxes[:0], scores[:0], 0.5).numel() == 0


def test_batched_nms_separates_groups_in_both_regimes():
    torch.manual_seed(0)
    corners = torch.rand(12000, 2) * 100
    boxes = torch.cat([corners, corners + torch.rand(12000, 2) * 50 + 1], dim=1)
    scores = torch.rand(12000)
    groups = torch.randint(0, 5, (12000,))
    keep, kept_scores = batched_nms(boxes, scores, groups, 0.5)  # >= 10000 boxes: one NMS per group
    assert bool((kept_scores[:-1] >= kept_scores[1:]).all())
    assert torch.equal(kept_scores, scores[keep])
    for group in range(5):
        members = (groups == group).nonzero().view(-1)
        expected = set(members[nms(boxes[members], scores[members], 0.5)].tolist())
        assert set(keep[groups[keep] == group].tolist()) == expected
    small_keep, _ = batched_nms(boxes[:500], scores[:500], groups[:500], 0.5)  # one NMS over offset boxes
    for group in range(5):
        members = (groups[:500] == group).nonzero().view(-1)
        expected = set(members[nms(boxes[members], scores[members], 0.5)].tolist())
        assert set(small_keep[groups[small_keep] == group].tolist()) == expected
