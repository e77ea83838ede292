"""Training schedules: end-to-end (`joint`) and the four-step `alternating` training of the Faster R-CNN paper.

Ren et al. (2015), section 3.2: 1. train the RPN; 2. train a Fast R-CNN detector on the step-1 proposals,
its shared layers starting again from the initial weights; 3. re-train the RPN-only layers on the step-2
backbone, shared layers frozen; 4. fine-tune the Fast R-CNN-only layers, shared layers frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import FasterRCNNHubError
from ..models.faster_rcnn.backbone import freeze_backbone_stages, freeze_modules

# The detector's parts, as attributes of `FasterRCNNForObjectDetection`.
SHARED_PARTS = ("backbone", "fpn")
PARTS = ("backbone", "fpn", "rpn", "roi_heads")


@dataclass(frozen=True)
class TrainingStage:
    """One phase of a schedule.

    Attributes:
        name: Short name, used in logs and checkpoints.
        description: What the phase does.
        losses: Loss terms optimised: `"rpn"`, `"rcnn"` or both.
        trainable: Parts of the detector that learn; the others are frozen (no gradient, BatchNorm frozen).
        restart_shared_layers: Reset the shared layers to the run's initial weights first (paper step 2).
        fixed_proposals: Take second-stage proposals from the frozen network of the previous phase
            (paper step 2) instead of the model's own RPN.
    """

    name: str
    description: str
    losses: tuple[str, ...]
    trainable: tuple[str, ...]
    restart_shared_layers: bool = False
    fixed_proposals: bool = False


SCHEDULES: dict[str, tuple[TrainingStage, ...]] = {
    "joint": (
        TrainingStage("joint", "end-to-end training of the whole detector", ("rpn", "rcnn"), PARTS),
    ),
    "alternating": (
        TrainingStage("rpn", "step 1: train the RPN", ("rpn",), ("backbone", "fpn", "rpn")),
        TrainingStage(
            "fast-rcnn",
            "step 2: train Fast R-CNN on the step-1 proposals",
            ("rcnn",),
            ("backbone", "fpn", "roi_heads"),
            restart_shared_layers=True,
            fixed_proposals=True,
        ),
        TrainingStage("rpn-only", "step 3: re-train the RPN-only layers, shared layers frozen", ("rpn",), ("rpn",)),
        TrainingStage(
            "fast-rcnn-only", "step 4: fine-tune the Fast R-CNN-only layers, shared layers frozen", ("rcnn",),
            ("roi_heads",),
        ),  # fmt: skip
    ),
}


# A Fast R-CNN (`config.proposal_source == "external"`) trains on its data set's proposals: the second stage's losses
# only, with the backbone and neck; its RPN takes no part.
EXTERNAL_PROPOSALS_STAGE = TrainingStage(
    "fast-rcnn", "Fast R-CNN on the data set's proposals", ("rcnn",), ("backbone", "fpn", "roi_heads")
)


def schedule_stages(name: str) -> tuple[TrainingStage, ...]:
    if name not in SCHEDULES:
        raise FasterRCNNHubError(f"Unknown schedule {name!r}; choose one of {list(SCHEDULES)}.")
    return SCHEDULES[name]


def set_trainable_parts(model: nn.Module, stage: TrainingStage) -> None:
    """Let exactly `stage.trainable` learn (minus the backbone stages the config freezes)."""
    for part in PARTS:
        getattr(model, part).requires_grad_(part in stage.trainable)
    freeze_backbone_stages(model.backbone, model.config.backbone_frozen_stages)


def enter_training_mode(model: nn.Module, stage: TrainingStage) -> None:
    """`model.train()`, with the frozen parts kept in inference mode so their BatchNorm statistics stay put."""
    model.train()
    freeze_modules(getattr(model, part) for part in PARTS if part not in stage.trainable)
