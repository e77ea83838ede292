"""Small models and data sets for the training tests (built at test time, seconds on 2 CPU cores)."""

from __future__ import annotations

from pathlib import Path

from faster_rcnn_hub import FasterRCNNConfig, FasterRCNNImageProcessor
from faster_rcnn_hub.data.synthetic import SHAPE_CLASSES, SyntheticSpec, write_dataset

TINY_IMAGE_SIZE = 96
TINY_SPEC = SyntheticSpec(image_size=(TINY_IMAGE_SIZE, TINY_IMAGE_SIZE), min_objects=1, max_objects=3,
                          min_object_size=16, max_object_size=40, clutter=3)  # fmt: skip


def tiny_config(**overrides) -> FasterRCNNConfig:
    """A narrow ResNet-18 FPN for 96-px images, trained from scratch (BatchNorm learns, nothing frozen)."""
    settings = dict(
        backbone_depth=18, backbone_base_channels=8, backbone_out_indices=[1, 2, 3], backbone_frozen_stages=-1,
        backbone_norm_eval=False, fpn_out_channels=16, fpn_num_outs=3, rpn_feat_channels=16, anchor_scales=[3.0],
        anchor_strides=[8, 16, 32], roi_featmap_strides=[8, 16, 32], box_head_fc_channels=32, rpn_max_per_img=100,
        id2label=dict(enumerate(SHAPE_CLASSES)),
        train_cfg={"rpn_num_samples": 64, "rcnn_num_samples": 32, "rpn_proposal_max_per_img": 100},
    )  # fmt: skip
    settings.update(overrides)
    return FasterRCNNConfig(**settings)


def tiny_processor() -> FasterRCNNImageProcessor:
    return FasterRCNNImageProcessor(size={"longest_edge": TINY_IMAGE_SIZE, "shortest_edge": TINY_IMAGE_SIZE})


def tiny_dataset(folder: Path, num_images: int = 6, seed: int = 0) -> Path:
    """A synthetic COCO data set of small images; returns its folder (`images/`, `annotations.json`)."""
    return write_dataset(folder, num_images, seed, TINY_SPEC)
