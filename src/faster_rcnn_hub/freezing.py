"""Which parameters learn: mmdetection's frozen backbone stages, and freezing whole parts of the detector."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn


def frozen_stage_modules(backbone: nn.Module, frozen_stages: int) -> list[nn.Module]:
    """The stem (stage 0) and the first `frozen_stages` residual stages; none for -1."""
    if frozen_stages < 0:
        return []
    return [backbone.stem, *list(backbone.stages)[:frozen_stages]]


def freeze_modules(modules: Iterable[nn.Module]) -> None:
    """Stop `modules` learning: no gradients, and BatchNorm statistics frozen (inference mode)."""
    for module in modules:
        module.eval()
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def freeze_backbone_stages(backbone: nn.Module, frozen_stages: int) -> None:
    """mmdetection's `ResNet._freeze_stages`: the stem and the first `frozen_stages` stages stay as loaded."""
    freeze_modules(frozen_stage_modules(backbone, frozen_stages))
