"""Optimizers and learning-rate schedules: mmdetection's SGD with linear warm-up and step decay by default."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import FasterRCNNHubError

OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("step", "cosine")


def build_optimizer(
    model: nn.Module,
    name: str = "sgd",
    learning_rate: float = 0.02,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    decay_norms_and_biases: bool = True,
) -> torch.optim.Optimizer:
    """SGD with momentum (mmdetection's `lr=0.02, momentum=0.9, weight_decay=1e-4` for 16 images a batch) or
    AdamW, over the parameters that require gradients.

    `decay_norms_and_biases=False` exempts BatchNorm weights and all biases from weight decay (mmdetection's
    `norm_decay_mult=0, bias_decay_mult=0`, usual with AdamW).
    """
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if not trainable:
        raise FasterRCNNHubError("Nothing to train: every parameter of the model is frozen.")
    if decay_norms_and_biases:
        groups = [{"params": trainable, "weight_decay": weight_decay}]
    else:
        groups = [
            {"params": [parameter for parameter in trainable if parameter.ndim > 1], "weight_decay": weight_decay},
            {"params": [parameter for parameter in trainable if parameter.ndim <= 1], "weight_decay": 0.0},
        ]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=learning_rate, momentum=momentum)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=learning_rate)
    raise FasterRCNNHubError(f"Unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}.")


def lr_factor(
    step: int,
    total_steps: int,
    warmup_steps: int = 500,
    warmup_ratio: float = 0.001,
    schedule: str = "step",
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    min_ratio: float = 0.01,
) -> float:
    """Multiplier of the base learning rate at `step` (0-based).

    Linear warm-up from `warmup_ratio` to 1 over `warmup_steps` (mmdetection's `LinearLR`), times either
    `gamma` for each milestone passed (`"step"`, mmdetection's `MultiStepLR`) or a cosine decay to `min_ratio`
    over the whole run (`"cosine"`).
    """
    factor = 1.0
    if step < warmup_steps:
        factor = warmup_ratio + (1.0 - warmup_ratio) * step / warmup_steps
    if schedule == "step":
        return factor * gamma ** sum(step >= milestone for milestone in milestones)
    if schedule == "cosine":
        progress = min(step / max(total_steps, 1), 1.0)
        return factor * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))
    raise FasterRCNNHubError(f"Unknown learning-rate schedule {schedule!r}; choose one of {list(LR_SCHEDULES)}.")


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int = 500,
    warmup_ratio: float = 0.001,
    schedule: str = "step",
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A `LambdaLR` following `lr_factor`, stepped once per training step."""
    if schedule not in LR_SCHEDULES:
        raise FasterRCNNHubError(f"Unknown learning-rate schedule {schedule!r}; choose one of {list(LR_SCHEDULES)}.")
    milestones = tuple(int(milestone) for milestone in milestones)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(step, total_steps, warmup_steps, warmup_ratio, schedule, milestones, gamma),
    )
