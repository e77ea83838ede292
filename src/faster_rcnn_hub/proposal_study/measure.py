"""Proposals of each method for one image, timed: the RPN of a Faster R-CNN, and selective search.

Every clock starts from the decoded RGB image (reading the file is left out for all methods alike) and stops
when the method's boxes exist, in original-image pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor
from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection
from ..proposals.selective_search import selective_search


@dataclass
class TimedProposals:
    """Boxes (`(n, 4)`, original pixels, best first), the seconds from image to boxes, and, for the RPN, the seconds
    of its own part (head and proposal step on features it shares with the detector)."""

    boxes: np.ndarray
    seconds: float
    own_seconds: float | None = None


@torch.no_grad()
def rpn_proposals(
    model: FasterRCNNForObjectDetection,
    processor: FasterRCNNImageProcessor,
    image: np.ndarray,
    max_proposals: int,
) -> TimedProposals:
    """The RPN's proposals for one image: the processor, backbone and neck, then the RPN with its test-time NMS,
    keeping up to `max_proposals` (from as many top-scoring anchors per level).

    Args:
        model: A Faster R-CNN in eval mode.
        processor: Its image processor.
        image: `(H, W, 3)` uint8 RGB.
        max_proposals: Proposals kept after NMS, and anchors kept per level before it.
    """
    device = next(model.parameters()).device
    start = time.perf_counter()
    inputs = processor(images=[image], device=device)
    height, width = inputs["padded_sizes"][0].tolist()
    pixel_values = inputs["pixel_values"][:, :, :height, :width].to(model.dtype)
    features = model.fpn(model.backbone(pixel_values))
    features_done = time.perf_counter()
    objectness, box_deltas = model.rpn.head(features)
    anchors = model.rpn.anchor_generator.grid_anchors(
        [feature.shape[-2:] for feature in features], device=device, dtype=torch.float32
    )
    resized_height, resized_width = inputs["image_sizes"][0].tolist()
    proposals = model.rpn.propose(
        [level[0].float() for level in objectness],
        [level[0].float() for level in box_deltas],
        anchors,
        (resized_height, resized_width),
        nms_pre=max_proposals,
        max_per_img=max_proposals,
    )
    original_height, original_width = inputs["original_sizes"][0].tolist()
    # Back to original pixels with mmdetection's per-axis factors (resized / original).
    scales = proposals.boxes.new_tensor([resized_width / original_width, resized_height / original_height] * 2)
    boxes = (proposals.boxes / scales).cpu().numpy()
    end = time.perf_counter()
    return TimedProposals(boxes=boxes.astype(np.float32), seconds=end - start, own_seconds=end - features_done)


def selective_search_proposals(image: np.ndarray, mode: str, max_proposals: int) -> TimedProposals:
    """Selective search (`"fast"` or `"quality"`) on one image, its first `max_proposals` boxes."""
    start = time.perf_counter()
    boxes = selective_search(image, mode, max_proposals)
    return TimedProposals(boxes=boxes, seconds=time.perf_counter() - start)


__all__ = ["TimedProposals", "rpn_proposals", "selective_search_proposals"]
