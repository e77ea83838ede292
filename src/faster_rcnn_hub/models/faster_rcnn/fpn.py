"""Feature Pyramid Network, as mmdetection's `FPN` with `add_extra_convs=False`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .fused_inference import FusedInferenceMixin, folded_conv


class FeaturePyramidNetwork(FusedInferenceMixin, nn.Module):
    """1x1 lateral convolutions, a nearest-neighbour top-down path and 3x3 output convolutions.

    Levels beyond the backbone's are made by `max_pool2d(kernel_size=1, stride=2)` of the last output.

    Args:
        in_channels: Channels of each backbone output, finest first.
        out_channels: Channels of every pyramid level.
        num_outs: Number of pyramid levels to return.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, num_outs: int) -> None:
        super().__init__()
        self.num_outs = num_outs
        self.lateral_convs = nn.ModuleList(nn.Conv2d(channels, out_channels, 1) for channels in in_channels)
        self.output_convs = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels
        )

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if self.runs_fused(self.output_convs[0].weight, *features):
            return self._forward_fused(features)
        laterals = [conv(feature) for conv, feature in zip(self.lateral_convs, features)]
        for index in range(len(laterals) - 1, 0, -1):
            laterals[index - 1] = laterals[index - 1] + F.interpolate(
                laterals[index], size=laterals[index - 1].shape[2:], mode="nearest"
            )
        outputs = [conv(lateral) for conv, lateral in zip(self.output_convs, laterals)]
        while len(outputs) < self.num_outs:
            outputs.append(F.max_pool2d(outputs[-1], 1, stride=2))
        return outputs

    def _forward_fused(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        # The same sums in the same order, `(conv + bias) + upsampled`, with each addition fused into its
        # lateral convolution.
        laterals = [folded_conv(self.lateral_convs[-1])(features[-1])]
        for conv, feature in zip(reversed(self.lateral_convs[:-1]), reversed(features[:-1])):
            upsampled = F.interpolate(laterals[0], size=feature.shape[2:], mode="nearest")
            laterals.insert(0, folded_conv(conv)(feature, residual=upsampled))
        outputs = [folded_conv(conv)(lateral) for conv, lateral in zip(self.output_convs, laterals)]
        while len(outputs) < self.num_outs:
            outputs.append(F.max_pool2d(outputs[-1], 1, stride=2))
        return outputs
