"""ResNet and ResNeXt backbones, built as mmdetection builds them (pytorch and caffe style), and which of their
stages learn (mmdetection's `frozen_stages`)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from .architecture import BLOCK_EXPANSION
from .configuration_faster_rcnn import FasterRCNNConfig
from .fused_inference import FusedInferenceMixin, folded_conv


def _batch_norm(channels: int, eps: float) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=eps)


class Shortcut(nn.Module):
    """1x1 projection of a residual block's input when its shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, eps: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
        self.norm = _batch_norm(out_channels, eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(hidden_states))

    def fused(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The inference path of `forward` (see `fused_inference.py`)."""
        return folded_conv(self.conv, self.norm)(hidden_states)


class BasicBlock(FusedInferenceMixin, nn.Module):
    """Two 3x3 convolutions (ResNet-18/34)."""

    expansion = BLOCK_EXPANSION["basic"]

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int,
        dilation: int,
        shortcut: Shortcut | None,
        eps: float,
        **_: object,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn1 = _batch_norm(planes, eps)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = _batch_norm(planes, eps)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = shortcut

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.runs_fused(self.conv1.weight, hidden_states):
            identity = hidden_states if self.shortcut is None else self.shortcut.fused(hidden_states)
            out = folded_conv(self.conv1, self.bn1)(hidden_states, relu=True)
            return folded_conv(self.conv2, self.bn2)(out, relu=True, residual=identity)
        identity = hidden_states if self.shortcut is None else self.shortcut(hidden_states)
        out = self.relu(self.bn1(self.conv1(hidden_states)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(FusedInferenceMixin, nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand (ResNet-50 and deeper, ResNeXt).

    `style="pytorch"` strides the 3x3 convolution, `style="caffe"` the first 1x1.
    """

    expansion = BLOCK_EXPANSION["bottleneck"]

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int,
        dilation: int,
        shortcut: Shortcut | None,
        eps: float,
        style: str = "pytorch",
        groups: int = 1,
        base_width: int = 4,
        base_channels: int = 64,
    ) -> None:
        super().__init__()
        if groups == 1:
            width = planes
        else:
            width = math.floor(planes * (base_width / base_channels)) * groups
        reduce_stride, spatial_stride = (1, stride) if style == "pytorch" else (stride, 1)
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride=reduce_stride, bias=False)
        self.bn1 = _batch_norm(width, eps)
        self.conv2 = nn.Conv2d(
            width,
            width,
            3,
            stride=spatial_stride,
            padding=dilation,
            dilation=dilation,
            groups=groups,
            bias=False,
        )
        self.bn2 = _batch_norm(width, eps)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = _batch_norm(planes * self.expansion, eps)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = shortcut

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.runs_fused(self.conv1.weight, hidden_states):
            identity = hidden_states if self.shortcut is None else self.shortcut.fused(hidden_states)
            out = folded_conv(self.conv1, self.bn1)(hidden_states, relu=True)
            out = folded_conv(self.conv2, self.bn2)(out, relu=True)
            return folded_conv(self.conv3, self.bn3)(out, relu=True, residual=identity)
        identity = hidden_states if self.shortcut is None else self.shortcut(hidden_states)
        out = self.relu(self.bn1(self.conv1(hidden_states)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class Stem(FusedInferenceMixin, nn.Module):
    """7x7 stride-2 convolution, BatchNorm, ReLU and 3x3 stride-2 max-pooling."""

    def __init__(self, out_channels: int, eps: float, in_channels: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=7, stride=2, padding=3, bias=False)
        self.norm = _batch_norm(out_channels, eps)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.runs_fused(self.conv.weight, pixel_values):
            # Channels-last from here on: the layout oneDNN's kernels read and write without reordering.
            return self.pool(folded_conv(self.conv, self.norm)(pixel_values, relu=True))
        return self.pool(self.relu(self.norm(self.conv(pixel_values))))


def block_class_for(config: FasterRCNNConfig) -> type[BasicBlock] | type[Bottleneck]:
    """The residual block of the configured depth (BasicBlock for ResNet-18/34, Bottleneck otherwise)."""
    return BasicBlock if config.block_type == "basic" else Bottleneck


def build_residual_stage(
    config: FasterRCNNConfig,
    stage_index: int,
    num_blocks: int,
    stride: int,
    dilation: int,
    groups: int,
) -> nn.Sequential:
    """One residual stage as mmdetection's `ResLayer` builds it: the first block strides (with a projection
    shortcut when the shape changes), and every block, the first included, gets the stage's dilation.

    Args:
        config: Depth, style, widths and BatchNorm epsilon.
        stage_index: 0 for res2 ... 3 for res5; sets the width (`base_channels * 2**stage_index` planes).
        num_blocks: Residual blocks in the stage.
        stride: Stride of the first block.
        dilation: Dilation of the 3x3 convolutions of every block.
        groups: Groups of the 3x3 convolutions (ResNeXt); 1 for plain ResNet.
    """
    block_class = block_class_for(config)
    eps = config.norm_eps
    base_channels = config.backbone_base_channels
    planes = base_channels * 2**stage_index
    in_channels = base_channels if stage_index == 0 else base_channels * 2 ** (stage_index - 1) * block_class.expansion
    out_channels = planes * block_class.expansion
    blocks = []
    for block_index in range(num_blocks):
        first = block_index == 0
        shortcut = None
        if first and (stride != 1 or in_channels != out_channels):
            shortcut = Shortcut(in_channels, out_channels, stride, eps)
        blocks.append(
            block_class(
                in_channels,
                planes,
                stride=stride if first else 1,
                dilation=dilation,
                shortcut=shortcut,
                eps=eps,
                style=config.backbone_style,
                groups=groups,
                base_width=config.backbone_base_width,
                base_channels=base_channels,
            )
        )
        in_channels = out_channels
    return nn.Sequential(*blocks)


class ResNetBackbone(nn.Module):
    """ResNet/ResNeXt returning the outputs of the stages listed in `config.backbone_out_indices`.

    Args:
        config: Architecture settings (depth, style, groups, widths, strides, dilations).
    """

    def __init__(self, config: FasterRCNNConfig) -> None:
        super().__init__()
        self.stem = Stem(config.backbone_base_channels, config.norm_eps)
        self.out_indices = list(config.backbone_out_indices)
        self.stages = nn.ModuleList(
            build_residual_stage(
                config,
                stage_index,
                num_blocks,
                stride=config.backbone_strides[stage_index],
                dilation=config.backbone_dilations[stage_index],
                groups=config.backbone_groups,
            )
            for stage_index, num_blocks in enumerate(config.stage_blocks)
        )

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        hidden_states = self.stem(pixel_values)
        outputs = []
        for stage_index, stage in enumerate(self.stages):
            hidden_states = stage(hidden_states)
            if stage_index in self.out_indices:
                outputs.append(hidden_states)
        return outputs


def frozen_stage_modules(backbone: ResNetBackbone, frozen_stages: int) -> list[nn.Module]:
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


def freeze_backbone_stages(backbone: ResNetBackbone, frozen_stages: int) -> None:
    """mmdetection's `ResNet._freeze_stages`: the stem and the first `frozen_stages` stages stay as loaded."""
    freeze_modules(frozen_stage_modules(backbone, frozen_stages))
