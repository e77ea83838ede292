"""Training-time settings of the detector: mmdetection's `train_cfg` for Faster R-CNN, under flat names.

They live in `FasterRCNNConfig.train_cfg` (a plain mapping, saved in `config.json`), so a fine-tuned model
carries the recipe it was trained with. Missing keys take mmdetection's defaults for
`faster-rcnn_r50_fpn.py`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

from .errors import InvalidConfigError


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """mmdetection's Faster R-CNN `train_cfg`.

    Args:
        rpn_pos_iou_threshold: Anchors with IoU at least this with a ground-truth box are positives.
        rpn_neg_iou_threshold: Anchors whose best IoU is below this are negatives.
        rpn_min_pos_iou: A ground-truth box claims its best anchors (low-quality matches) only if their IoU is
            at least this.
        rpn_match_low_quality: Let every ground-truth box claim its best-overlapping anchors.
        rpn_num_samples: Anchors sampled per image for the RPN loss.
        rpn_pos_fraction: Share of positives among the sampled anchors (at most).
        rpn_proposal_nms_pre: Proposals kept per level before NMS while training (`train_cfg.rpn_proposal`).
        rpn_proposal_max_per_img: Proposals kept per image after NMS while training.
        rcnn_pos_iou_threshold: Proposals with IoU at least this with a ground-truth box are positives.
        rcnn_neg_iou_threshold: Proposals whose best IoU is below this are negatives.
        rcnn_min_pos_iou: Threshold of the second stage's low-quality matches (unused unless enabled).
        rcnn_match_low_quality: Low-quality matches in the second stage (off in mmdetection).
        rcnn_num_samples: Proposals sampled per image for the second-stage loss.
        rcnn_pos_fraction: Share of positives among the sampled proposals (at most).
        rcnn_add_gt_as_proposals: Add the ground-truth boxes to the proposals before sampling.
    """

    rpn_pos_iou_threshold: float = 0.7
    rpn_neg_iou_threshold: float = 0.3
    rpn_min_pos_iou: float = 0.3
    rpn_match_low_quality: bool = True
    rpn_num_samples: int = 256
    rpn_pos_fraction: float = 0.5
    rpn_proposal_nms_pre: int = 2000
    rpn_proposal_max_per_img: int = 1000
    rcnn_pos_iou_threshold: float = 0.5
    rcnn_neg_iou_threshold: float = 0.5
    rcnn_min_pos_iou: float = 0.5
    rcnn_match_low_quality: bool = False
    rcnn_num_samples: int = 512
    rcnn_pos_fraction: float = 0.25
    rcnn_add_gt_as_proposals: bool = True

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "bool":
                if not isinstance(value, bool):
                    raise InvalidConfigError(f"train_cfg.{field.name} must be true or false, got {value!r}.")
            elif field.type == "int":
                if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                    raise InvalidConfigError(f"train_cfg.{field.name} must be a positive integer, got {value!r}.")
            elif (
                not isinstance(value, numbers.Real)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or not 0.0 <= value <= 1.0
            ):
                raise InvalidConfigError(f"train_cfg.{field.name} must be a number in [0, 1], got {value!r}.")
        for stage in ("rpn", "rcnn"):
            if getattr(self, f"{stage}_neg_iou_threshold") > getattr(self, f"{stage}_pos_iou_threshold"):
                raise InvalidConfigError(
                    f"train_cfg.{stage}_neg_iou_threshold must not exceed {stage}_pos_iou_threshold."
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> TrainingSettings:
        """Settings from a (partial) mapping such as `config.train_cfg`; unknown keys are refused."""
        if values is None:
            return cls()
        if not isinstance(values, Mapping):
            raise InvalidConfigError(f"train_cfg must be a mapping or null, got {type(values).__name__}.")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidConfigError(f"train_cfg has unknown keys {unknown}; known keys: {sorted(known)}.")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
