"""Selective search through OpenCV's contrib build, and proposal files."""

from __future__ import annotations

import numpy as np
import pytest

from faster_rcnn_hub.data.synthetic import SyntheticSpec, generate_image
from faster_rcnn_hub.errors import InvalidAnnotationError, InvalidImageError
from faster_rcnn_hub.proposals import ProposalSet, selective_search


@pytest.fixture(scope="module")
def image():
    return np.asarray(generate_image(3, 0, SyntheticSpec(image_size=(128, 160))).image)


def test_selective_search_gives_ranked_boxes_inside_the_image_the_same_every_time(image):
    fast = selective_search(image, "fast")
    assert fast.dtype == np.float32 and fast.ndim == 2 and fast.shape[1] == 4 and len(fast) > 50
    assert (fast[:, 2] > fast[:, 0]).all() and (fast[:, 3] > fast[:, 1]).all()
    assert fast[:, 0].min() >= 0 and fast[:, 1].min() >= 0 and fast[:, 2].max() <= 160 and fast[:, 3].max() <= 128
    assert np.array_equal(selective_search(image, "fast"), fast)
    assert np.array_equal(selective_search(image, "fast", max_proposals=20), fast[:20])
    # The quality mode runs more strategies: more proposals.
    assert len(selective_search(image, "quality")) > len(fast)


def test_selective_search_refuses_what_is_not_an_rgb_image(image):
    with pytest.raises(InvalidImageError, match="uint8 RGB"):
        selective_search(image.astype(np.float32), "fast")
    with pytest.raises(ValueError, match="mode must be one of"):
        selective_search(image, "slow")


def test_proposal_file_round_trip_and_damage(tmp_path):
    proposals = ProposalSet(
        boxes={3: np.array([[1, 2, 3, 4]], dtype=np.float32), 1: np.zeros((0, 4), dtype=np.float32)},
        method="selective-search-fast",
        seconds={3: 0.25},
    )
    path = proposals.save(tmp_path / "proposals.npz")
    loaded = ProposalSet.load(path)
    assert loaded.method == "selective-search-fast" and loaded.seconds == {3: 0.25}
    assert np.array_equal(loaded.for_image(3), proposals.boxes[3]) and loaded.for_image(1).shape == (0, 4)
    assert loaded.covers([1, 3]) and not loaded.covers([1, 2])
    with pytest.raises(InvalidAnnotationError, match="no entry for image id 2"):
        loaded.for_image(2)
    (tmp_path / "broken.npz").write_bytes(path.read_bytes()[:100])
    with pytest.raises(InvalidAnnotationError, match="cannot be read"):
        ProposalSet.load(tmp_path / "broken.npz")
    np.savez(tmp_path / "other.npz", boxes=np.zeros((1, 4)))
    with pytest.raises(InvalidAnnotationError, match="lacks image_ids"):
        ProposalSet.load(tmp_path / "other.npz")
    with pytest.raises(InvalidAnnotationError, match="not found"):
        ProposalSet.load(tmp_path / "missing.npz")
