"""Box coding, anchors, NMS and soft-NMS follow mmdetection/mmcv exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from faster_rcnn_hub.models.faster_rcnn.boxes import AnchorGenerator
from faster_rcnn_hub.models.faster_rcnn.boxes import DeltaXYWHBoxCoder
from faster_rcnn_hub.models.faster_rcnn.nms import batched_nms, nms
from faster_rcnn_hub.models.faster_rcnn.nms import batched_soft_nms, soft_nms


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


def reference_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> list[int]:
    """mmcv's CPU NMS written out greedily in float32 NumPy: visit boxes by decreasing score, keep one unless a kept
    box overlaps it with IoU > threshold (areas without mmcv's old +1 offset)."""
    boxes, scores = boxes.numpy().astype(np.float32), scores.numpy()
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    suppressed = np.zeros(len(boxes), dtype=bool)
    kept = []
    for index in np.argsort(-scores, kind="stable"):
        if suppressed[index]:
            continue
        kept.append(int(index))
        width = np.clip(np.minimum(boxes[index, 2], boxes[:, 2]) - np.maximum(boxes[index, 0], boxes[:, 0]), 0, None)
        height = np.clip(np.minimum(boxes[index, 3], boxes[:, 3]) - np.maximum(boxes[index, 1], boxes[:, 1]), 0, None)
        overlap = width * height
        suppressed |= overlap / (areas[index] + areas - overlap) > np.float32(iou_threshold)
    return kept


def reference_batched_nms(boxes, scores, groups, iou_threshold) -> list[int]:
    """NMS within each group, then every kept box by decreasing score (mmcv's `batched_nms` output order; mmcv
    orders boxes of exactly equal score by an unstable sort, so these come by index)."""
    kept = []
    for group in groups.unique().tolist():
        members = (groups == group).nonzero().view(-1)
        kept += members[reference_nms(boxes[members], scores[members], iou_threshold)].tolist()
    return sorted(kept, key=lambda index: (-float(scores[index]), index))


def assert_same_order(keep: torch.Tensor, scores: torch.Tensor, expected: list[int]) -> None:
    """`keep` is `expected`, in the same order apart from boxes of exactly equal score (random float32 scores
    collide), whose order no implementation defines."""
    assert bool((scores[keep][:-1] >= scores[keep][1:]).all()), "kept boxes are not in decreasing score order"
    assert sorted(keep.tolist(), key=lambda index: (-float(scores[index]), index)) == expected


def test_reference_nms_agrees_with_the_hand_made_case():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert reference_nms(boxes, scores, 0.5) == [3, 2] and reference_nms(boxes, scores, 0.99) == [3, 1, 2]


def test_batched_nms_separates_groups_in_both_regimes():
    torch.manual_seed(0)
    corners = torch.rand(12000, 2) * 100
    boxes = torch.cat([corners, corners + torch.rand(12000, 2) * 50 + 1], dim=1)
    scores = torch.rand(12000)
    groups = torch.randint(0, 5, (12000,))
    keep, kept_scores = batched_nms(boxes, scores, groups, 0.5)  # >= 10000 boxes: one NMS per group
    assert torch.equal(kept_scores, scores[keep])
    assert_same_order(keep, scores, reference_batched_nms(boxes, scores, groups, 0.5))
    small_keep, _ = batched_nms(boxes[:500], scores[:500], groups[:500], 0.5)  # one NMS over offset boxes
    assert_same_order(small_keep, scores[:500], reference_batched_nms(boxes[:500], scores[:500], groups[:500], 0.5))


def mmcv_softnms_cpu(boxes, scores, iou_threshold, sigma, min_score, method):
    """Line-by-line transcription of mmcv 2.1.0's `softnms_cpu` (ops/csrc/pytorch/cpu/nms.cpp, offset 0) in
    float32 scalars: the reference the vectorized `soft_nms` must reproduce, permutations included."""
    f32 = np.float32
    x1, y1, x2, y2 = (boxes[:, index].numpy().astype(f32).copy() for index in range(4))
    sc = scores.numpy().astype(f32).copy()
    areas = (x2 - x1) * (y2 - y1)
    inds = np.arange(len(sc))
    threshold, sigma, min_score = f32(iou_threshold), f32(sigma), f32(min_score)
    columns = [x1, y1, x2, y2, sc, areas, inds]
    dets_scores = []
    nboxes, i = len(sc), 0
    while i < nboxes:
        max_pos = i
        for pos in range(i + 1, nboxes):
            if sc[max_pos] < sc[pos]:
                max_pos = pos
        for column in columns:
            column[i], column[max_pos] = column[max_pos], column[i]
        dets_scores.append(sc[i])
        pos = i + 1
        while pos < nboxes:
            width = max(f32(0), min(x2[i], x2[pos]) - max(x1[i], x1[pos]))
            height = max(f32(0), min(y2[i], y2[pos]) - max(y1[i], y1[pos]))
            inter = width * height
            ovr = inter / (areas[i] + areas[pos] - inter)
            weight = f32(1)
            if method == "naive" and ovr >= threshold:
                weight = f32(0)
            elif method == "linear" and ovr >= threshold:
                weight = f32(1) - ovr
            elif method == "gaussian":
                weight = np.exp(-(ovr * ovr) / sigma)
            sc[pos] = sc[pos] * weight
            if sc[pos] < min_score:
                for column in columns:
                    column[pos] = column[nboxes - 1]
                nboxes -= 1
                pos -= 1
            pos += 1
        i += 1
    return torch.from_numpy(inds[:nboxes].copy()), torch.tensor(np.array(dets_scores, dtype=f32))


def _clustered_boxes(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes in tight clusters (heavy overlaps, so scores fall below min_score and boxes are dropped and
    reordered), with repeated scores (ties decided by the kernel's array order)."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.rand(count // 8 + 1, 2, generator=generator) * 200
    corners = centres.repeat_interleave(8, dim=0)[:count] + torch.rand(count, 2, generator=generator) * 3
    sizes = 20 + torch.rand(count, 2, generator=generator) * 4
    boxes = torch.cat([corners, corners + sizes], dim=1)
    scores = torch.rand(count, generator=generator)
    scores[::5] = scores[1::5][: scores[::5].numel()]  # ties
    return boxes, scores


@pytest.mark.parametrize("method", ["linear", "gaussian", "naive"])
@pytest.mark.parametrize("min_score", [1e-3, 0.3])
def test_soft_nms_reproduces_mmcv_kernel(method, min_score):
    boxes, scores = _clustered_boxes(300, seed=len(method))
    keep, kept_scores = soft_nms(boxes, scores, iou_threshold=0.3, sigma=0.5, min_score=min_score, method=method)
    expected_keep, expected_scores = mmcv_softnms_cpu(boxes, scores, 0.3, 0.5, min_score, method)
    assert 0 < len(expected_keep) < len(boxes)  # some boxes were dropped
    assert torch.equal(keep, expected_keep)
    if method == "gaussian":  # float exp may differ from C's expf in the last bit
        torch.testing.assert_close(kept_scores, expected_scores, rtol=1e-6, atol=0)
    else:
        assert torch.equal(kept_scores, expected_scores)
    assert bool((kept_scores[:-1] >= kept_scores[1:]).all())


def test_soft_nms_lowers_overlapping_scores_linearly():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    keep, kept_scores = soft_nms(boxes, scores, iou_threshold=0.3)
    # Box 1 overlaps box 0 with IoU 0.5 -> 0.8 * 0.5; box 3 duplicates box 0 (IoU 1) -> 0, below min_score: dropped.
    assert keep.tolist() == [0, 2, 1]
    torch.testing.assert_close(kept_scores, torch.tensor([0.9, 0.7, 0.4]))
    assert soft_nms(boxes[:0], scores[:0], 0.3)[0].numel() == 0


def test_soft_nms_stopping_early_gives_the_same_first_results():
    boxes, scores = _clustered_boxes(400, seed=3)
    groups = torch.randint(0, 4, (400,), generator=torch.Generator().manual_seed(0))
    full_keep, full_scores = batched_soft_nms(boxes, scores, groups, 0.5)
    keep, kept_scores = batched_soft_nms(boxes, scores, groups, 0.5, max_num=50)
    assert len(keep) == 50
    assert torch.equal(keep, full_keep[:50]) and torch.equal(kept_scores, full_scores[:50])


def test_batched_soft_nms_is_mmcv_batched_nms_in_both_regimes():
    boxes, scores = _clustered_boxes(600, seed=5)
    groups = torch.randint(0, 3, (600,), generator=torch.Generator().manual_seed(1))
    # mmcv's batched_nms: groups kept apart by offsetting their boxes, IoU computed on the offset boxes.
    offset_boxes = boxes + (groups.float() * (boxes.max() + 1))[:, None]

    keep, kept_scores = batched_soft_nms(boxes, scores, groups, 0.5)  # one soft-NMS over all groups
    expected_keep, expected_scores = mmcv_softnms_cpu(offset_boxes, scores, 0.5, 0.5, 1e-3, "linear")
    assert torch.equal(keep, expected_keep) and torch.equal(kept_scores, expected_scores)

    keep, kept_scores = batched_soft_nms(boxes, scores, groups, 0.5, split_threshold=100)  # one per group
    scores_after = torch.zeros_like(scores)
    kept = torch.zeros_like(scores, dtype=torch.bool)
    for group in range(3):
        members = (groups == group).nonzero().view(-1)
        group_keep, group_scores = mmcv_softnms_cpu(offset_boxes[members], scores[members], 0.5, 0.5, 1e-3, "linear")
        kept[members[group_keep]] = True
        scores_after[members[group_keep]] = group_scores
    expected_scores, order = scores_after[kept].sort(descending=True)
    assert torch.equal(keep, kept.nonzero().view(-1)[order]) and torch.equal(kept_scores, expected_scores)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_soft_nms_on_cuda_matches_cpu():
    boxes, scores = _clustered_boxes(300, seed=7)
    groups = torch.randint(0, 3, (300,), generator=torch.Generator().manual_seed(2))
    cpu = batched_soft_nms(boxes, scores, groups, 0.5, max_num=100)
    gpu = batched_soft_nms(boxes.cuda(), scores.cuda(), groups.cuda(), 0.5, max_num=100)
    assert torch.equal(gpu[0].cpu(), cpu[0]) and torch.equal(gpu[1].cpu(), cpu[1])
