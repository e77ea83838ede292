"""The model a training run starts from: a converted or trained model folder (fine-tuning), or a new one."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import FasterRCNNHubError
from ..models.faster_rcnn.configuration_faster_rcnn import FasterRCNNConfig
from ..models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor
from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection

# The class-dependent layers: mmdetection's `fc_cls` and `fc_reg`, of the box head or of each cascade stage.
CLASS_DEPENDENT_KEY = re.compile(r"roi_heads\.(?:stages\.\d+\.)?box_predictor\.(cls_score|bbox_pred)\.")


@dataclass
class StartingPoint:
    """A model ready to train, its processor, and what was done to get it (for the user and the model card)."""

    model: FasterRCNNForObjectDetection
    processor: FasterRCNNImageProcessor
    notes: list[str] = field(default_factory=list)


def _labels(class_names: Sequence[str]) -> dict[int, str]:
    return {index: name for index, name in enumerate(class_names)}


def model_for_finetuning(model_dir: str | os.PathLike, class_names: Sequence[str]) -> StartingPoint:
    """Load a model folder to fine-tune on a data set with `class_names`.

    When its classes differ from the data set's (in number, names or order), only the class-dependent
    layers (`roi_heads.box_predictor.cls_score` and `.bbox_pred`, mmdetection's `fc_cls` and `fc_reg`; every
    stage's, for a Cascade R-CNN) are re-initialised, as mmdetection initialises them; every other weight is kept.
    A class-agnostic box regression is kept as well.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FasterRCNNHubError(
            f"{model_dir} is not a model folder (no config.json); convert an mmdetection checkpoint first with "
            "faster-rcnn-hub convert."
        )
    pretrained = FasterRCNNForObjectDetection.from_pretrained(str(model_dir))
    processor = FasterRCNNImageProcessor.from_pretrained(str(model_dir))
    old_names = [pretrained.config.id2label[index] for index in range(pretrained.config.num_classes)]
    if old_names == list(class_names):
        return StartingPoint(pretrained, processor, [f"Fine-tuning {model_dir} on its own {len(old_names)} classes."])

    config = FasterRCNNConfig.from_dict(pretrained.config.to_dict())
    config.id2label = _labels(class_names)
    config.label2id = {name: index for index, name in config.id2label.items()}
    model = FasterRCNNForObjectDetection(config)
    state = pretrained.state_dict()
    dependent = ["cls_score"] + ([] if config.reg_class_agnostic else ["bbox_pred"])
    reinitialised = sorted(
        key for key in model.state_dict()
        if (match := CLASS_DEPENDENT_KEY.match(key)) is not None and match.group(1) in dependent
    )  # fmt: skip
    missing, unexpected = model.load_state_dict(
        {key: value for key, value in state.items() if key not in reinitialised}, strict=False
    )
    if sorted(missing) != reinitialised or unexpected:
        raise FasterRCNNHubError(f"Unexpected weights while adapting {model_dir}: missing {missing}, extra {unexpected}.")
    note = (
        f"{model_dir} has {len(old_names)} classes ({', '.join(old_names[:5])}{', ...' if len(old_names) > 5 else ''}); "
        f"the data set has {len(class_names)} ({', '.join(list(class_names)[:5])}"
        f"{', ...' if len(class_names) > 5 else ''}). Re-initialised the class-dependent layers "
        f"{', '.join(reinitialised)} (fc_cls / fc_reg); every other weight is kept."
    )
    return StartingPoint(model, processor, [note])


def with_new_mask_head(start: StartingPoint, conv_channels: int, seed: int) -> StartingPoint:
    """`start`'s model turned into a Mask R-CNN: a new mask branch (mmdetection's `FCNMaskHead`, four 3x3
    convolutions of `conv_channels`, RoIAlign 14x14, 28x28 masks) initialised as mmdetection does (seeded), every
    other weight kept, so a trained box detector learns to segment by fine-tuning.

    Raises:
        FasterRCNNHubError: The model already has a mask head, or it cannot carry one (no FPN, or a cascade).
    """
    config = start.model.config
    if config.mask_head is not None:
        raise FasterRCNNHubError(
            "The model already has a mask head (config.mask_head); fine-tune it as it is, without --mask-head-channels."
        )
    if config.neck_type != "fpn" or config.cascade_stages is not None:
        raise FasterRCNNHubError(
            "A mask head goes on a Faster R-CNN with an FPN (mmdetection's Mask R-CNN); this model "
            f"{'is a Cascade R-CNN' if config.cascade_stages is not None else f'has neck_type={config.neck_type!r}'}."
        )
    new_config = FasterRCNNConfig.from_dict(config.to_dict() | {"mask_head": {"conv_channels": conv_channels}})
    torch.manual_seed(seed)
    model = FasterRCNNForObjectDetection(new_config)
    missing, unexpected = model.load_state_dict(start.model.state_dict(), strict=False)
    if unexpected or any(not key.startswith("roi_heads.mask_head.") for key in missing):
        raise FasterRCNNHubError(f"Unexpected weights while adding a mask head: missing {missing}, extra {unexpected}.")
    note = (
        f"Added a new mask head ({conv_channels} channels, 4 convolutions, 28x28 masks, random weights, seed {seed}): "
        "the model becomes a Mask R-CNN and trains with each object's segmentation."
    )
    return StartingPoint(model, start.processor, [*start.notes, note])


def new_model(
    config: FasterRCNNConfig, class_names: Sequence[str], processor: FasterRCNNImageProcessor, seed: int
) -> StartingPoint:
    """A randomly initialised model (mmdetection's initialisation, seeded) for `class_names`."""
    config = FasterRCNNConfig.from_dict(config.to_dict())
    config.id2label = _labels(class_names)
    config.label2id = {name: index for index, name in config.id2label.items()}
    torch.manual_seed(seed)
    model = FasterRCNNForObjectDetection(config)
    notes = [
        f"New ResNet-{config.backbone_depth} FPN model with random weights (seed {seed}), {len(class_names)} classes."
    ]
    if config.backbone_norm_eval or config.backbone_frozen_stages >= 0:
        notes.append(
            "note: this config freezes BatchNorm statistics (backbone_norm_eval) or backbone stages "
            "(backbone_frozen_stages), which only makes sense for pretrained weights; for training from scratch set "
            "backbone_norm_eval=false and backbone_frozen_stages=-1."
        )
    return StartingPoint(model, processor, notes)
