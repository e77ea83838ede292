"""The box head of C4 Faster R-CNN: the backbone's fifth residual stage, run on every RoI, then average pooling.

A C4 model's backbone stops after res4 (stride 16). Each proposal is pooled from that map with RoIAlign
(14x14 in mmdetection's `faster-rcnn_r50-caffe_c4` config), goes through res5 (mmdetection's `ResLayer`
shared head, `roi_head.shared_head.layer4.*`; its first block strides 14x14 down to 7x7) and is averaged to one
vector per RoI (mmdetection's `BBoxHead(with_avg_pool=True)`), which the class and box predictors read.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import RESNET_ARCHITECTURES, SHARED_RES5_STAGE
from .backbone import block_class_for, build_residual_stage
from .configuration_faster_rcnn import FasterRCNNConfig


class SharedRes5Head(nn.Module):
    """res5 on pooled RoI features, then a global average pool: `(K, C4 channels, S, S)` -> `(K, out_features)`.

    Built as mmdetection's `ResLayer(depth, stage=3)`: a plain ResNet stage of the backbone's depth and style
    (no ResNeXt groups, as mmdetection's shared head has none), with its own stride and dilation.

    Args:
        config: Backbone depth, style and widths, `shared_res5_stride`, `shared_res5_dilation` and
            `roi_output_size`.
    """

    def __init__(self, config: FasterRCNNConfig) -> None:
        super().__init__()
        num_blocks = RESNET_ARCHITECTURES[config.backbone_depth][1][SHARED_RES5_STAGE]
        self.res5 = build_residual_stage(
            config,
            SHARED_RES5_STAGE,
            num_blocks,
            stride=config.shared_res5_stride,
            dilation=config.shared_res5_dilation,
            groups=1,
        )
        self.pool_size = config.shared_res5_out_size
        self.out_features = config.backbone_base_channels * 2**SHARED_RES5_STAGE * block_class_for(config).expansion

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        hidden = self.res5(pooled)
        # mmdetection's `nn.AvgPool2d(roi_feat_size)` over the whole res5 output, then a flatten.
        return F.avg_pool2d(hidden, self.pool_size).flatten(1)
