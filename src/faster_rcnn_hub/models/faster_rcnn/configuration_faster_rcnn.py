"""Configuration of an mmdetection-compatible Faster R-CNN (ResNet/ResNeXt backbone, FPN or a single feature map,
RPN, RoI head)."""

from __future__ import annotations

import math
import numbers
import os
from typing import Any

try:
    from transformers import PreTrainedConfig
except ImportError:  # transformers 4.x spells it PretrainedConfig
    from transformers import PretrainedConfig as PreTrainedConfig

from .architecture import (
    BACKBONE_STYLES,
    BLOCK_EXPANSION,
    CASCADE_STAGE_KEYS,
    MASK_HEAD_DEFAULTS,
    NECK_TYPES,
    NMS_TYPES,
    PROPOSAL_SOURCES,
    RESNET_ARCHITECTURES,
    ROI_HEAD_TYPES,
    SHARED_RES5_STAGE,
    SOFT_NMS_METHODS,
)
from .errors import InvalidConfigError
from .saving import save_with_model_code
from .training_settings import TrainingSettings

# Every architecture and test-time field with its default (documented in `FasterRCNNConfig`).
FIELD_DEFAULTS: dict[str, Any] = {
    "backbone_depth": 50,
    "backbone_style": "pytorch",
    "backbone_groups": 1,
    "backbone_base_width": 4,
    "backbone_base_channels": 64,
    "backbone_num_stages": 4,
    "backbone_strides": (1, 2, 2, 2),
    "backbone_dilations": (1, 1, 1, 1),
    "backbone_out_indices": (0, 1, 2, 3),
    "backbone_frozen_stages": 1,
    "backbone_norm_eval": True,
    "norm_eps": 1e-5,
    "neck_type": "fpn",
    "fpn_out_channels": 256,
    "fpn_num_outs": 5,
    "rpn_feat_channels": 256,
    "anchor_scales": (8.0,),
    "anchor_ratios": (0.5, 1.0, 2.0),
    "anchor_strides": (4, 8, 16, 32, 64),
    "rpn_box_coder_means": (0.0, 0.0, 0.0, 0.0),
    "rpn_box_coder_stds": (1.0, 1.0, 1.0, 1.0),
    "rpn_nms_pre": 1000,
    "rpn_nms_iou_threshold": 0.7,
    "rpn_max_per_img": 1000,
    "rpn_min_bbox_size": 0.0,
    "roi_output_size": 7,
    "roi_sampling_ratio": 0,
    "roi_aligned": True,
    "roi_finest_scale": 56.0,
    "roi_featmap_strides": (4, 8, 16, 32),
    "roi_head_type": "fc",
    "shared_res5_stride": 2,
    "shared_res5_dilation": 1,
    "box_head_fc_channels": 1024,
    "box_head_num_fcs": 2,
    "reg_class_agnostic": False,
    "box_coder_means": (0.0, 0.0, 0.0, 0.0),
    "box_coder_stds": (0.1, 0.1, 0.2, 0.2),
    "rcnn_score_threshold": 0.05,
    "rcnn_nms_type": "nms",
    "rcnn_nms_iou_threshold": 0.5,
    "rcnn_soft_nms_method": "linear",
    "rcnn_soft_nms_sigma": 0.5,
    "rcnn_soft_nms_min_score": 1e-3,
    "rcnn_max_per_img": 100,
    "proposal_source": "rpn",
    "cascade_stages": None,
    "mask_head": None,
    "source": None,
    "train_cfg": None,
}


class FasterRCNNConfig(PreTrainedConfig):
    r"""
    Configuration of [`FasterRCNNForObjectDetection`]: every architecture and test-time setting that an
    mmdetection Faster R-CNN config can carry (FPN, C4 and DC5 models), under names close to mmdetection's own.

    Args:
        backbone_depth (`int`, *optional*, defaults to 50):
            ResNet depth: 18 or 34 (BasicBlock), 50, 101 or 152 (Bottleneck).
        backbone_style (`str`, *optional*, defaults to `"pytorch"`):
            `"pytorch"` puts a Bottleneck's stride on its 3x3 convolution, `"caffe"` on its first 1x1.
        backbone_groups (`int`, *optional*, defaults to 1):
            Groups of the 3x3 convolutions; more than 1 makes a ResNeXt.
        backbone_base_width (`int`, *optional*, defaults to 4):
            ResNeXt width per group (the "4d" of "32x4d").
        backbone_base_channels (`int`, *optional*, defaults to 64):
            Width of the stem and of the first stage; stage `i` has `base_channels * 2**i` planes.
        backbone_num_stages (`int`, *optional*, defaults to 4):
            Number of residual stages.
        backbone_strides (`list[int]`, *optional*, defaults to `[1, 2, 2, 2]`):
            Stride of the first block of each stage.
        backbone_dilations (`list[int]`, *optional*, defaults to `[1, 1, 1, 1]`):
            Dilation of every block of each stage.
        backbone_out_indices (`list[int]`, *optional*, defaults to `[0, 1, 2, 3]`):
            Stages whose outputs feed the FPN.
        backbone_frozen_stages (`int`, *optional*, defaults to 1):
            Stages (counting the stem as 0) whose weights are not trained.
        backbone_norm_eval (`bool`, *optional*, defaults to `True`):
            Keep every BatchNorm in inference mode, also while training.
        norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the BatchNorm layers.
        neck_type (`str`, *optional*, defaults to `"fpn"`):
            `"fpn"`: a Feature Pyramid Network turns the backbone outputs into `fpn_num_outs` levels.
            `"none"`: the backbone's single output feeds the RPN and the RoI head directly (C4 and DC5 models).
        fpn_out_channels (`int`, *optional*, defaults to 256):
            Channels of every FPN output (ignored without FPN).
        fpn_num_outs (`int`, *optional*, defaults to 5):
            Number of FPN levels; levels past the backbone's are max-pooled from the last one (ignored without
            FPN).
        rpn_feat_channels (`int`, *optional*, defaults to 256):
            Channels of the RPN's shared 3x3 convolution.
        anchor_scales (`list[float]`, *optional*, defaults to `[8]`):
            Anchor sizes in units of the level's stride.
        anchor_ratios (`list[float]`, *optional*, defaults to `[0.5, 1.0, 2.0]`):
            Anchor height/width ratios.
        anchor_strides (`list[int]`, *optional*, defaults to `[4, 8, 16, 32, 64]`):
            Stride (and base anchor size) of each FPN level.
        rpn_box_coder_means (`list[float]`, *optional*, defaults to `[0, 0, 0, 0]`):
            Means of the RPN's box-delta coder.
        rpn_box_coder_stds (`list[float]`, *optional*, defaults to `[1, 1, 1, 1]`):
            Standard deviations of the RPN's box-delta coder.
        rpn_nms_pre (`int`, *optional*, defaults to 1000):
            Proposals kept per level, by score, before NMS (mmdetection's `test_cfg.rpn.nms_pre`).
        rpn_nms_iou_threshold (`float`, *optional*, defaults to 0.7):
            IoU threshold of the proposal NMS.
        rpn_max_per_img (`int`, *optional*, defaults to 1000):
            Proposals kept per image after NMS.
        rpn_min_bbox_size (`float`, *optional*, defaults to 0):
            Proposals whose width or height is not larger than this are dropped; a negative value keeps all.
        roi_output_size (`int`, *optional*, defaults to 7):
            Output size of RoIAlign.
        roi_sampling_ratio (`int`, *optional*, defaults to 0):
            RoIAlign sampling ratio (0: adaptive).
        roi_aligned (`bool`, *optional*, defaults to `True`):
            RoIAlign's half-pixel alignment.
        roi_finest_scale (`float`, *optional*, defaults to 56):
            Scale that maps RoIs to FPN levels.
        roi_featmap_strides (`list[int]`, *optional*, defaults to `[4, 8, 16, 32]`):
            Strides of the feature levels RoIs are pooled from.
        roi_head_type (`str`, *optional*, defaults to `"fc"`):
            `"fc"`: the pooled RoI features go through `box_head_num_fcs` fully connected layers
            (mmdetection's `Shared2FCBBoxHead`; FPN and DC5 models). `"shared_res5"`: they go through the
            backbone's fifth residual stage and are average-pooled (mmdetection's `ResLayer` shared head with a
            `BBoxHead(with_avg_pool=True)`; C4 models, whose backbone stops after four stages).
        shared_res5_stride (`int`, *optional*, defaults to 2):
            Stride of the first block of the shared res5 stage (`"shared_res5"` only).
        shared_res5_dilation (`int`, *optional*, defaults to 1):
            Dilation of every block of the shared res5 stage (`"shared_res5"` only).
        box_head_fc_channels (`int`, *optional*, defaults to 1024):
            Width of the two shared fully connected layers of the box head (`roi_head_type="fc"` only).
        box_head_num_fcs (`int`, *optional*, defaults to 2):
            Number of shared fully connected layers (`roi_head_type="fc"` only).
        reg_class_agnostic (`bool`, *optional*, defaults to `False`):
            One box regression for all classes instead of one per class.
        box_coder_means (`list[float]`, *optional*, defaults to `[0, 0, 0, 0]`):
            Means of the box head's delta coder.
        box_coder_stds (`list[float]`, *optional*, defaults to `[0.1, 0.1, 0.2, 0.2]`):
            Standard deviations of the box head's delta coder.
        rcnn_score_threshold (`float`, *optional*, defaults to 0.05):
            Class scores not above this are dropped before the final NMS.
        rcnn_nms_type (`str`, *optional*, defaults to `"nms"`):
            Final per-class suppression: `"nms"`, or `"soft_nms"` (mmcv's soft-NMS, which lowers the scores of
            overlapping boxes instead of dropping them).
        rcnn_nms_iou_threshold (`float`, *optional*, defaults to 0.5):
            IoU threshold of the final per-class NMS (for soft-NMS: the IoU from which `linear` and `naive`
            lower a score).
        rcnn_soft_nms_method (`str`, *optional*, defaults to `"linear"`):
            How soft-NMS lowers a score: `"linear"` (times `1 - IoU`), `"gaussian"` (times
            `exp(-IoU**2 / sigma)`) or `"naive"` (times 0).
        rcnn_soft_nms_sigma (`float`, *optional*, defaults to 0.5):
            Width of the `"gaussian"` soft-NMS penalty.
        rcnn_soft_nms_min_score (`float`, *optional*, defaults to 1e-3):
            Soft-NMS drops a box once its lowered score falls below this.
        rcnn_max_per_img (`int`, *optional*, defaults to 100):
            Detections kept per image; outputs are padded to this count.
        proposal_source (`str`, *optional*, defaults to `"rpn"`):
            Where the RoI head's boxes come from: `"rpn"` (Faster R-CNN; `forward` may still be given
            `proposals`), or `"external"` for a Fast R-CNN trained on proposals from outside (selective search, another
            detector), whose RPN is untrained: `forward` then requires `proposals`.
        cascade_stages (`list[dict]`, *optional*):
            Makes the model a Cascade R-CNN: one entry per box stage, in order, each with `box_coder_stds` (the
            stage's delta-coder standard deviations, 4 numbers), `iou_threshold` (the IoU from which a RoI is a
            positive when the stage is trained, mmdetection's `pos_iou_thr`) and `loss_weight` (mmdetection's
            `stage_loss_weights` entry). Each stage has its own box head (`box_head_num_fcs` layers of
            `box_head_fc_channels`) and class-agnostic box predictor (`reg_class_agnostic` must be true); every stage
            but the last refines the boxes the next stage pools, and the detections take the mean of all stages'
            class logits and the last stage's boxes. `box_coder_stds` is then not used. `None` (the default): one
            box stage, Faster R-CNN. Training a cascade follows mmdetection's `CascadeRoIHead.loss`: each stage
            assigns its RoIs at its `iou_threshold` and its losses count `loss_weight` times.
        mask_head (`dict`, *optional*):
            Makes the model a Mask R-CNN (mmdetection's `FCNMaskHead`): each detection's box is pooled again with
            RoIAlign (`roi_output_size`, default 14; `roi_sampling_ratio`, default 0; `roi_aligned`, default true;
            on the same levels as the box head), goes through `num_convs` (4) 3x3 convolutions of `conv_channels`
            (256) channels with ReLU, a 2x2 deconvolution that upsamples by `upsample_ratio` (2) with ReLU, and a 1x1
            convolution to one mask logit map per class (one in all with `class_agnostic`); masks are
            `roi_output_size * upsample_ratio` (28) pixels square. `mask_threshold` (0.5) binarises the pasted mask
            probabilities (mmdetection's `mask_thr_binary`). Missing keys take these defaults. With `cascade_stages`
            (Cascade Mask R-CNN) every stage has its own mask head, and a detection's mask is the mean of their
            probabilities. `None` (the default): no masks. Mask models run inference only.
        source (`dict`, *optional*):
            Where the weights came from (checkpoint file, config name, SHA-256), recorded by the converter.
        train_cfg (`dict`, *optional*):
            Training-time settings (mmdetection's `train_cfg`: anchor and proposal assignment, sampling,
            train-time proposal counts); missing keys take mmdetection's defaults. See
            `TrainingSettings` in `training_settings.py`.
        num_classes (`int`, *optional*):
            Number of object classes, background excluded. Alternative to `id2label`.

    Example:

    ```python
    >>> from faster_rcnn_hub import FasterRCNNConfig, FasterRCNNForObjectDetection
    >>> config = FasterRCNNConfig(backbone_depth=101, num_classes=20)
    >>> model = FasterRCNNForObjectDetection(config)
    ```
    """

    model_type = "faster_rcnn"

    def __init__(self, num_classes: int | None = None, **kwargs: Any) -> None:
        # A plain `__init__` rather than dataclass fields: transformers 4.x and 5.0 build configs this way, and later
        # releases still accept it, so the same file works as remote code on all of them.
        for name, default in FIELD_DEFAULTS.items():
            value = kwargs.pop(name, default)
            setattr(self, name, list(value) if isinstance(value, tuple) else value)
        id2label = kwargs.get("id2label")
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1
        ):
            quoted = " (a string: write the number without quotes)" if isinstance(num_classes, str) else ""
            raise InvalidConfigError(f"num_classes must be a positive integer, got {num_classes!r}{quoted}.")
        if num_classes is not None and id2label is None:
            kwargs["num_labels"] = num_classes
        elif num_classes is not None and len(id2label) != num_classes:
            raise InvalidConfigError(
                f"num_classes={num_classes} disagrees with id2label, which names {len(id2label)} classes; "
                "give one of the two."
            )
        if id2label is None and kwargs.get("num_labels") is None:
            kwargs["num_labels"] = 80
        super().__init__(**kwargs)
        self.validate()

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> None:
        """Write `config.json` as transformers does, and the model code beside it (`saving.py`), so that the folder
        loads with `trust_remote_code=True` where this package is not installed. The model's `save_pretrained`
        (and so `Trainer.save_model`) saves its config through this."""
        save_with_model_code(self, super().save_pretrained, save_directory, push_to_hub, **kwargs)

    # ------------------------------------------------------------------ derived architecture facts
    @property
    def num_classes(self) -> int:
        """Number of object classes, background excluded."""
        return self.num_labels

    @property
    def block_type(self) -> str:
        """`"basic"` or `"bottleneck"`, from the depth."""
        return RESNET_ARCHITECTURES[self.backbone_depth][0]

    @property
    def stage_blocks(self) -> list[int]:
        """Residual blocks per used stage."""
        return list(RESNET_ARCHITECTURES[self.backbone_depth][1][: self.backbone_num_stages])

    @property
    def backbone_out_channels(self) -> list[int]:
        """Channels of the backbone outputs selected by `backbone_out_indices`."""
        expansion = BLOCK_EXPANSION[self.block_type]
        return [self.backbone_base_channels * 2**index * expansion for index in self.backbone_out_indices]

    @property
    def backbone_out_strides(self) -> list[int]:
        """Stride of each backbone output selected by `backbone_out_indices` (the stem's is 4)."""
        strides, stride = [], 4
        for stage_stride in self.backbone_strides:
            stride *= stage_stride
            strides.append(stride)
        return [strides[index] for index in self.backbone_out_indices]

    @property
    def layout_name(self) -> str:
        """mmdetection's name for the detector layout: `"FPN"`, `"C4"` (shared res5 RoI head) or `"DC5"`
        (dilated res5, no FPN); another single-map layout is named by its stride."""
        if self.neck_type == "fpn":
            return "FPN"
        if self.roi_head_type == "shared_res5":
            return "C4"
        if self.backbone_out_indices == [self.backbone_num_stages - 1] and self.backbone_dilations[-1] > 1:
            return f"DC{self.backbone_num_stages + 1}"
        return f"single map, stride {self.backbone_out_strides[0]}"

    @property
    def feature_channels(self) -> int:
        """Channels of the feature maps the RPN and the RoI head read: the FPN's, or the backbone output's."""
        return self.fpn_out_channels if self.neck_type == "fpn" else self.backbone_out_channels[0]

    @property
    def num_feature_levels(self) -> int:
        """Number of feature maps the RPN runs on: the FPN levels, or the backbone's single output."""
        return self.fpn_num_outs if self.neck_type == "fpn" else len(self.backbone_out_indices)

    @property
    def shared_res5_out_size(self) -> int:
        """Side of the shared res5 stage's output for a `roi_output_size` RoI (its first block strides it)."""
        return (self.roi_output_size - 1) // self.shared_res5_stride + 1

    @property
    def num_cascade_stages(self) -> int:
        """Number of box stages of a Cascade R-CNN (`cascade_stages`), 0 for a single-stage box head."""
        return len(self.cascade_stages) if self.cascade_stages is not None else 0

    @property
    def mask_size(self) -> int:
        """Side of the mask head's output masks (28 for mmdetection's Mask R-CNN), 0 without a mask head."""
        if self.mask_head is None:
            return 0
        return self.mask_head["roi_output_size"] * self.mask_head["upsample_ratio"]

    @property
    def num_anchors_per_location(self) -> int:
        return len(self.anchor_scales) * len(self.anchor_ratios)

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check every architecture and test-time field; raise `InvalidConfigError` naming the bad field."""
        self._validate_choices_and_types()
        self._validate_backbone()
        self._validate_feature_levels()
        if self.roi_head_type == "shared_res5":
            self._validate_shared_res5()
        for name in ("rpn_box_coder_means", "box_coder_means"):
            _check_number_list(self, name, length=4)
        for name in ("rpn_box_coder_stds", "box_coder_stds"):
            _check_number_list(self, name, length=4, minimum=0.0)
        if self.cascade_stages is not None:
            self._validate_cascade()
        if self.mask_head is not None:
            self._validate_mask_head()
        if self.source is not None and not isinstance(self.source, dict):
            raise InvalidConfigError(f"source must be a mapping or null, got {type(self.source).__name__}.")
        TrainingSettings.from_mapping(self.train_cfg)

    def _validate_choices_and_types(self) -> None:
        # Each field on its own: named choices, integer counts, flags and bounded numbers.
        _check_choice(self, "backbone_depth", tuple(RESNET_ARCHITECTURES))
        _check_choice(self, "backbone_style", BACKBONE_STYLES)
        _check_choice(self, "neck_type", NECK_TYPES)
        _check_choice(self, "roi_head_type", ROI_HEAD_TYPES)
        _check_choice(self, "rcnn_nms_type", NMS_TYPES)
        _check_choice(self, "rcnn_soft_nms_method", SOFT_NMS_METHODS)
        _check_choice(self, "proposal_source", PROPOSAL_SOURCES)
        for name in (
            "backbone_groups",
            "backbone_base_width",
            "backbone_base_channels",
            "fpn_out_channels",
            "fpn_num_outs",
            "rpn_feat_channels",
            "rpn_nms_pre",
            "rpn_max_per_img",
            "roi_output_size",
            "box_head_fc_channels",
            "shared_res5_stride",
            "shared_res5_dilation",
            "rcnn_max_per_img",
        ):
            _check_int(self, name, minimum=1)
        _check_int(self, "backbone_num_stages", minimum=1, maximum=4)
        _check_int(self, "backbone_frozen_stages", minimum=-1, maximum=4)
        _check_int(self, "box_head_num_fcs", minimum=1)
        _check_int(self, "roi_sampling_ratio", minimum=0)
        _check_int(self, "num_labels", minimum=1)
        for name in ("backbone_norm_eval", "roi_aligned", "reg_class_agnostic"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidConfigError(f"{name} must be true or false, got {getattr(self, name)!r}.")
        _check_number(self, "norm_eps", minimum=0.0, inclusive=False)
        _check_number(self, "roi_finest_scale", minimum=0.0, inclusive=False)
        _check_number(self, "rpn_min_bbox_size")
        for name in ("rpn_nms_iou_threshold", "rcnn_nms_iou_threshold"):
            _check_number(self, name, minimum=0.0, maximum=1.0)
        _check_number(self, "rcnn_score_threshold", minimum=0.0, maximum=1.0)
        _check_number(self, "rcnn_soft_nms_sigma", minimum=0.0, inclusive=False)
        _check_number(self, "rcnn_soft_nms_min_score", minimum=0.0, maximum=1.0)

    def _validate_backbone(self) -> None:
        stages = self.backbone_num_stages
        _check_int_list(self, "backbone_strides", length=stages, minimum=1)
        _check_int_list(self, "backbone_dilations", length=stages, minimum=1)
        _check_int_list(self, "backbone_out_indices", minimum=0, maximum=stages - 1)
        if list(self.backbone_out_indices) != sorted(set(self.backbone_out_indices)):
            raise InvalidConfigError(
                f"backbone_out_indices must be increasing and unique, got {self.backbone_out_indices}."
            )
        if self.backbone_groups > 1 and self.block_type != "bottleneck":
            raise InvalidConfigError(
                f"backbone_groups={self.backbone_groups} (ResNeXt) needs a Bottleneck depth (50, 101, 152), "
                f"not backbone_depth={self.backbone_depth}."
            )

    def _validate_feature_levels(self) -> None:
        # The neck decides how many feature levels there are; anchors and RoI pooling must agree with it.
        if self.neck_type == "fpn" and self.fpn_num_outs < len(self.backbone_out_indices):
            raise InvalidConfigError(
                f"fpn_num_outs={self.fpn_num_outs} is smaller than the {len(self.backbone_out_indices)} backbone "
                "outputs it is built on."
            )
        if self.neck_type == "none" and len(self.backbone_out_indices) != 1:
            raise InvalidConfigError(
                f"neck_type='none' feeds one backbone output to the heads, but backbone_out_indices="
                f"{self.backbone_out_indices} selects {len(self.backbone_out_indices)}; select one stage or use "
                "neck_type='fpn'."
            )
        _check_number_list(self, "anchor_scales", minimum=0.0)
        _check_number_list(self, "anchor_ratios", minimum=0.0)
        levels = self.num_feature_levels
        _check_int_list(self, "anchor_strides", length=levels, minimum=1)
        if self.neck_type == "none" and list(self.anchor_strides) != self.backbone_out_strides:
            raise InvalidConfigError(
                f"anchor_strides {self.anchor_strides} must be the stride of the backbone output "
                f"{self.backbone_out_strides} (backbone_strides={self.backbone_strides})."
            )
        _check_int_list(self, "roi_featmap_strides", minimum=1)
        if len(self.roi_featmap_strides) > levels:
            raise InvalidConfigError(
                f"roi_featmap_strides has {len(self.roi_featmap_strides)} levels but there are only {levels} "
                "feature levels."
            )
        if list(self.roi_featmap_strides) != list(self.anchor_strides[: len(self.roi_featmap_strides)]):
            raise InvalidConfigError(
                f"roi_featmap_strides {self.roi_featmap_strides} must be the first feature strides "
                f"{self.anchor_strides[: len(self.roi_featmap_strides)]}."
            )

    def _validate_shared_res5(self) -> None:
        # The C4 layout: the backbone stops after res4 and the RoI head owns res5.
        if self.backbone_num_stages != SHARED_RES5_STAGE or self.backbone_out_indices != [SHARED_RES5_STAGE - 1]:
            raise InvalidConfigError(
                "roi_head_type='shared_res5' runs the fifth residual stage in the RoI head, so the backbone must "
                f"stop after four stages: backbone_num_stages={SHARED_RES5_STAGE} with backbone_out_indices="
                f"[{SHARED_RES5_STAGE - 1}], got {self.backbone_num_stages} and {self.backbone_out_indices}."
            )
        if self.neck_type != "none":
            raise InvalidConfigError("roi_head_type='shared_res5' reads the C4 feature map: use neck_type='none'.")


    def _validate_cascade(self) -> None:
        # Each stage is a dict with exactly the keys below; the stages share one box-head layout (as every
        # mmdetection Cascade R-CNN config has them), and their regression is class-agnostic, which is what lets a
        # stage refine a RoI without knowing its class.
        stages = self.cascade_stages
        if not isinstance(stages, (list, tuple)) or not stages:
            raise InvalidConfigError(
                f"cascade_stages must be a non-empty list of stages or null, got {_describe(stages)}."
            )
        for index, stage in enumerate(stages):
            name = f"cascade_stages[{index}]"
            if not isinstance(stage, dict) or set(stage) != set(CASCADE_STAGE_KEYS):
                found = sorted(stage) if isinstance(stage, dict) else _describe(stage)
                raise InvalidConfigError(f"{name} must be a mapping with keys {list(CASCADE_STAGE_KEYS)}, got {found}.")
            stds = stage["box_coder_stds"]
            if (
                not isinstance(stds, (list, tuple))
                or len(stds) != 4
                or not all(_is_number(item) and item > 0 for item in stds)
            ):
                raise InvalidConfigError(f"{name}.box_coder_stds must be 4 positive numbers, got {stds!r}.")
            for key in ("iou_threshold", "loss_weight"):
                value = stage[key]
                if not _is_number(value) or value < 0 or (key == "iou_threshold" and value > 1):
                    bounds = "[0, 1]" if key == "iou_threshold" else "a number >= 0"
                    raise InvalidConfigError(f"{name}.{key} must be {bounds}, got {_describe(value)}.")
        if self.roi_head_type != "fc":
            raise InvalidConfigError(
                f"cascade_stages needs roi_head_type='fc' (fully connected stage heads), got {self.roi_head_type!r}."
            )
        if not self.reg_class_agnostic:
            raise InvalidConfigError(
                "cascade_stages needs reg_class_agnostic=true: each stage refines a RoI with one class-agnostic box, "
                "as mmdetection's Cascade R-CNN does."
            )

    def _validate_mask_head(self) -> None:
        # Missing keys take mmdetection's defaults, so the stored config always names every setting.
        mask_head = self.mask_head
        if not isinstance(mask_head, dict):
            raise InvalidConfigError(f"mask_head must be a mapping or null, got {_describe(mask_head)}.")
        unknown = sorted(set(mask_head) - set(MASK_HEAD_DEFAULTS))
        if unknown:
            raise InvalidConfigError(f"mask_head has unknown keys {unknown}; its keys are {list(MASK_HEAD_DEFAULTS)}.")
        self.mask_head = mask_head = {**MASK_HEAD_DEFAULTS, **mask_head}
        for key, minimum in (("roi_output_size", 1), ("roi_sampling_ratio", 0), ("num_convs", 0),
                             ("conv_channels", 1), ("upsample_ratio", 1)):  # fmt: skip
            value = mask_head[key]
            if not _is_int(value) or value < minimum:
                raise InvalidConfigError(f"mask_head.{key} must be an integer >= {minimum}, got {_describe(value)}.")
        for key in ("roi_aligned", "class_agnostic"):
            if not isinstance(mask_head[key], bool):
                raise InvalidConfigError(f"mask_head.{key} must be true or false, got {_describe(mask_head[key])}.")
        threshold = mask_head["mask_threshold"]
        if not _is_number(threshold) or not 0 <= threshold <= 1:
            raise InvalidConfigError(f"mask_head.mask_threshold must be in [0, 1], got {_describe(threshold)}.")
        if self.neck_type != "fpn":
            raise InvalidConfigError(
                "mask_head needs neck_type='fpn': masks are pooled from the feature pyramid, as in mmdetection's "
                f"Mask R-CNN FPN models; got neck_type={self.neck_type!r}."
            )


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _check_choice(config: FasterRCNNConfig, name: str, choices: tuple) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or value not in choices:
        raise InvalidConfigError(f"{name} must be one of {list(choices)}, got {_describe(value)}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(config: FasterRCNNConfig, name: str, minimum: int | None = None, maximum: int | None = None) -> None:
    value = getattr(config, name)
    if not _is_int(value):
        raise InvalidConfigError(f"{name} must be an integer, got {_describe(value)}.")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise InvalidConfigError(f"{name}={value} is out of range [{minimum}, {maximum}].")


def _check_number(
    config: FasterRCNNConfig,
    name: str,
    minimum: float | None = None,
    maximum: float | None = None,
    inclusive: bool = True,
) -> None:
    value = getattr(config, name)
    if not _is_number(value):
        raise InvalidConfigError(f"{name} must be a finite number, got {_describe(value)}.")
    too_small = minimum is not None and (value < minimum if inclusive else value <= minimum)
    if too_small or (maximum is not None and value > maximum):
        bounds = f"[{minimum}, {maximum}]" if inclusive else f"({minimum}, {maximum}]"
        raise InvalidConfigError(f"{name}={value} is out of range {bounds}.")


def _check_list(config: FasterRCNNConfig, name: str, length: int | None) -> list:
    value = getattr(config, name)
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidConfigError(f"{name} must be a non-empty list, got {_describe(value)}.")
    if length is not None and len(value) != length:
        raise InvalidConfigError(f"{name} must have {length} entries, got {len(value)}: {list(value)}.")
    return list(value)


def _check_int_list(
    config: FasterRCNNConfig,
    name: str,
    length: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> None:
    for item in _check_list(config, name, length):
        if not _is_int(item):
            raise InvalidConfigError(f"{name} must hold integers, got {_describe(item)}.")
        if (minimum is not None and item < minimum) or (maximum is not None and item > maximum):
            raise InvalidConfigError(f"{name} entry {item} is out of range [{minimum}, {maximum}].")


def _check_number_list(
    config: FasterRCNNConfig, name: str, length: int | None = None, minimum: float | None = None
) -> None:
    for item in _check_list(config, name, length):
        if not _is_number(item):
            raise InvalidConfigError(f"{name} must hold finite numbers, got {_describe(item)}.")
        if minimum is not None and item <= minimum:
            raise InvalidConfigError(f"{name} entry {item} must be greater than {minimum}.")


__all__ = ["FasterRCNNConfig"]
