"""From an mmdetection config (2.x or 3.x layout) to `FasterRCNNConfig` and image-processor settings.

Plain Python on plain tables (no torch): `faster-rcnn-hub zoo` asks it which zoo entries convert.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import MMDetConfigError, UnsupportedArchitectureError
from ..models.faster_rcnn.architecture import (
    BLOCK_EXPANSION,
    RESNET_ARCHITECTURES,
    SHARED_RES5_STAGE,
    SOFT_NMS_METHODS,
)
from ..zoo import ZooEntry

SUPPORTED_DETECTORS = ("FasterRCNN", "MaskRCNN", "CascadeRCNN")
SUPPORTED_BACKBONES = ("ResNet", "ResNeXt")
SUPPORTED_NECKS = ("FPN",)
SUPPORTED_BOX_HEADS = ("Shared2FCBBoxHead", "ConvFCBBoxHead")
# The box head that follows a shared res5 head (C4): average pooling, then the class and box predictors.
SHARED_HEAD_BOX_HEADS = ("BBoxHead",)


@dataclass
class ConversionSettings:
    """What the converter derives from an mmdetection config."""

    model: dict[str, Any]
    processor: dict[str, Any]
    num_classes: int
    fpn_in_channels: list[int] | None  # None without an FPN
    dataset_type: str | None = None
    config_classes: tuple[str, ...] | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SupportStatus:
    """Whether this package can convert and run a zoo entry now, and if not, why."""

    supported: bool
    reason: str | None = None


def zoo_support(entry: ZooEntry) -> SupportStatus:
    """The converter's verdict on a zoo entry: its config mapping runs on the entry's config, so an entry flips to
    supported as soon as the package learns its architecture."""
    try:
        settings_from_mmdet_config(entry.mmdet_config)
    except UnsupportedArchitectureError as error:
        return SupportStatus(False, str(error))
    return SupportStatus(True)


def _strip_scope(type_name: Any) -> Any:
    # mmengine allows scoped names such as "mmdet.FasterRCNN".
    return type_name.split(".")[-1] if isinstance(type_name, str) else type_name


def _section(config: dict[str, Any], path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _require_dict(config: dict[str, Any], path: str) -> dict[str, Any]:
    value = _section(config, path)
    if not isinstance(value, dict):
        raise MMDetConfigError(f"The mmdetection config has no `{path}` section (found {value!r}).")
    return value


def _expect(value: Any, path: str, allowed: Sequence[Any], what: str = "") -> None:
    if value not in allowed:
        raise UnsupportedArchitectureError(
            f"`{path}` = {value!r} is not supported{what}; supported: {list(allowed)}."
        )


def _numbers(value: Any, path: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, (int, float)) for item in value):
        raise MMDetConfigError(f"`{path}` must be a list of numbers, got {value!r}.")
    return [float(item) for item in value]


def _ints(value: Any, path: str) -> list[int]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, int) for item in value):
        raise MMDetConfigError(f"`{path}` must be a list of integers, got {value!r}.")
    return list(value)


def settings_from_mmdet_config(config: dict[str, Any]) -> ConversionSettings:
    """Translate a parsed mmdetection Faster R-CNN config.

    Raises:
        UnsupportedArchitectureError: the config describes a model this package cannot run (the message names
            the field and what is supported).
        MMDetConfigError: the config lacks a section it needs.
    """
    model_cfg = _require_dict(config, "model")
    _expect(
        _strip_scope(model_cfg.get("type")),
        "model.type",
        SUPPORTED_DETECTORS,
        " (Faster R-CNN, Mask R-CNN and Cascade R-CNN convert)",
    )
    notes: list[str] = []
    model: dict[str, Any] = {}
    model.update(_backbone_settings(_require_dict(config, "model.backbone")))
    model.update(_neck_settings(model_cfg.get("neck"), model))
    model.update(_rpn_settings(_require_dict(config, "model.rpn_head"), model))
    roi_settings, num_classes = _roi_settings(_require_dict(config, "model.roi_head"), model, model_cfg)
    model.update(roi_settings)
    model.update(_test_settings(config))
    model.update(_mask_settings(config, model, num_classes))
    fpn_in_channels = model.pop("_fpn_in_channels")
    model.pop("_feature_channels")
    processor = _processor_settings(config, notes)
    dataset_type, config_classes = _dataset_info(config)
    return ConversionSettings(
        model=model,
        processor=processor,
        num_classes=num_classes,
        fpn_in_channels=fpn_in_channels,
        dataset_type=dataset_type,
        config_classes=config_classes,
        notes=notes,
    )


def _backbone_settings(backbone: dict[str, Any]) -> dict[str, Any]:
    kind = _strip_scope(backbone.get("type"))
    _expect(kind, "model.backbone.type", SUPPORTED_BACKBONES)
    depth = backbone.get("depth")
    _expect(depth, "model.backbone.depth", tuple(RESNET_ARCHITECTURES))
    for key, default in (("deep_stem", False), ("avg_down", False), ("dcn", None), ("plugins", None)):
        if backbone.get(key, default) not in (default, False, None):
            raise UnsupportedArchitectureError(
                f"`model.backbone.{key}` = {backbone[key]!r} is not supported (ResNetV1d stems, deformable "
                "convolutions and plugins are outside plain ResNet/ResNeXt)."
            )
    norm = backbone.get("norm_cfg") or {"type": "BN"}
    _expect(norm.get("type"), "model.backbone.norm_cfg.type", ("BN", "SyncBN"), " (only BatchNorm backbones)")
    num_stages = backbone.get("num_stages", 4)
    base_channels = backbone.get("base_channels", 64)
    stem_channels = backbone.get("stem_channels") or base_channels
    if stem_channels != base_channels:
        raise UnsupportedArchitectureError(
            f"`model.backbone.stem_channels` = {stem_channels} differs from base_channels = {base_channels}; "
            "not supported."
        )
    settings: dict[str, Any] = {
        "backbone_depth": depth,
        "backbone_style": backbone.get("style", "pytorch"),
        "backbone_base_channels": base_channels,
        "backbone_num_stages": num_stages,
        "backbone_strides": _ints(backbone.get("strides", (1, 2, 2, 2)[:num_stages]), "model.backbone.strides"),
        "backbone_dilations": _ints(backbone.get("dilations", (1, 1, 1, 1)[:num_stages]), "model.backbone.dilations"),
        "backbone_out_indices": _ints(backbone.get("out_indices", (0, 1, 2, 3)), "model.backbone.out_indices"),
        "backbone_frozen_stages": backbone.get("frozen_stages", -1),
        "backbone_norm_eval": bool(backbone.get("norm_eval", True)),
        "norm_eps": float(norm.get("eps", 1e-5)),
    }
    _expect(settings["backbone_style"], "model.backbone.style", ("pytorch", "caffe"))
    if kind == "ResNeXt":
        settings["backbone_groups"] = backbone.get("groups", 1)
        settings["backbone_base_width"] = backbone.get("base_width", 4)
    return settings


def _stage_channels(model: dict[str, Any], stage_index: int) -> int:
    """Output channels of residual stage `stage_index` (0: res2 ... 3: res5), as mmdetection's ResNet has them."""
    expansion = BLOCK_EXPANSION[RESNET_ARCHITECTURES[model["backbone_depth"]][0]]
    return model["backbone_base_channels"] * 2**stage_index * expansion


def _neck_settings(neck: Any, model: dict[str, Any]) -> dict[str, Any]:
    if neck is None:
        # C4 and DC5: the heads read the backbone's single output map directly.
        out_channels = [_stage_channels(model, index) for index in model["backbone_out_indices"]]
        if len(out_channels) != 1:
            raise UnsupportedArchitectureError(
                f"The config has no `model.neck` but `model.backbone.out_indices` = {model['backbone_out_indices']} "
                "selects several stages; without a neck the heads read exactly one feature map (as C4 and DC5 "
                "models do)."
            )
        return {"neck_type": "none", "_fpn_in_channels": None, "_feature_channels": out_channels[0]}
    _expect(_strip_scope(neck.get("type")), "model.neck.type", SUPPORTED_NECKS, " (or no neck: C4, DC5)")
    for key, default in (
        ("start_level", 0),
        ("end_level", -1),
        ("add_extra_convs", False),
        ("relu_before_extra_convs", False),
        ("no_norm_on_lateral", False),
        ("conv_cfg", None),
        ("norm_cfg", None),
        ("act_cfg", None),
    ):
        if neck.get(key, default) != default:
            raise UnsupportedArchitectureError(
                f"`model.neck.{key}` = {neck[key]!r} is not supported (expected {default!r})."
            )
    upsample = neck.get("upsample_cfg") or {"mode": "nearest"}
    if upsample != {"mode": "nearest"}:
        raise UnsupportedArchitectureError(f"`model.neck.upsample_cfg` = {upsample!r} is not supported.")
    num_outs = neck.get("num_outs", 5)
    in_channels = _ints(neck.get("in_channels"), "model.neck.in_channels")
    if len(in_channels) != len(model["backbone_out_indices"]):
        raise MMDetConfigError(
            f"`model.neck.in_channels` has {len(in_channels)} entries but the backbone returns "
            f"{len(model['backbone_out_indices'])} stages."
        )
    out_channels = neck.get("out_channels", 256)
    return {
        "neck_type": "fpn",
        "fpn_out_channels": out_channels,
        "fpn_num_outs": num_outs,
        "_fpn_in_channels": in_channels,
        "_feature_channels": out_channels,
    }


def _rpn_settings(rpn: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    _expect(_strip_scope(rpn.get("type")), "model.rpn_head.type", ("RPNHead",))
    if rpn.get("num_convs", 1) != 1:
        raise UnsupportedArchitectureError(f"`model.rpn_head.num_convs` = {rpn['num_convs']} is not supported (1).")
    if rpn.get("in_channels", model["_feature_channels"]) != model["_feature_channels"]:
        raise MMDetConfigError(
            f"`model.rpn_head.in_channels` = {rpn['in_channels']} differs from the {model['_feature_channels']} "
            "channels of the feature maps it reads."
        )
    anchors = rpn.get("anchor_generator") or {}
    _expect(_strip_scope(anchors.get("type", "AnchorGenerator")), "model.rpn_head.anchor_generator.type", ("AnchorGenerator",))
    if anchors.get("center_offset", 0.0) != 0.0 or anchors.get("centers") is not None or anchors.get("base_sizes"):
        raise UnsupportedArchitectureError(
            "`model.rpn_head.anchor_generator` with centers, base_sizes or a non-zero center_offset is not supported."
        )
    if anchors.get("scale_major", True) is not True:
        raise UnsupportedArchitectureError("`model.rpn_head.anchor_generator.scale_major=False` is not supported.")
    if "scales" in anchors:
        scales = _numbers(anchors["scales"], "model.rpn_head.anchor_generator.scales")
    elif "octave_base_scale" in anchors:
        octave_base = float(anchors["octave_base_scale"])
        per_octave = int(anchors["scales_per_octave"])
        scales = [2 ** (index / per_octave) * octave_base for index in range(per_octave)]
    else:
        raise MMDetConfigError("`model.rpn_head.anchor_generator` has neither scales nor octave_base_scale.")
    strides = anchors.get("strides")
    if strides and isinstance(strides[0], (list, tuple)):
        if any(len(set(stride)) != 1 for stride in strides):
            raise UnsupportedArchitectureError("Anisotropic anchor strides are not supported.")
        strides = [stride[0] for stride in strides]
    coder = _box_coder(rpn.get("bbox_coder") or {}, "model.rpn_head.bbox_coder", (0.0,) * 4, (1.0,) * 4)
    return {
        "rpn_feat_channels": rpn.get("feat_channels", model["_feature_channels"]),
        "anchor_scales": scales,
        "anchor_ratios": _numbers(anchors.get("ratios", (0.5, 1.0, 2.0)), "model.rpn_head.anchor_generator.ratios"),
        "anchor_strides": _ints(strides, "model.rpn_head.anchor_generator.strides"),
        "rpn_box_coder_means": coder[0],
        "rpn_box_coder_stds": coder[1],
    }


def _box_coder(coder: dict[str, Any], path: str, means: Sequence[float], stds: Sequence[float]) -> tuple[list, list]:
    _expect(_strip_scope(coder.get("type", "DeltaXYWHBBoxCoder")), f"{path}.type", ("DeltaXYWHBBoxCoder",))
    if coder.get("clip_border", True) is not True or coder.get("add_ctr_clamp", False):
        raise UnsupportedArchitectureError(f"`{path}` with clip_border=False or add_ctr_clamp is not supported.")
    return (
        _numbers(coder.get("target_means", means), f"{path}.target_means"),
        _numbers(coder.get("target_stds", stds), f"{path}.target_stds"),
    )


def _roi_settings(roi: dict[str, Any], model: dict[str, Any], model_cfg: dict[str, Any]) -> tuple[dict[str, Any], int]:
    kind = _strip_scope(roi.get("type"))
    expected_kind = "CascadeRoIHead" if _strip_scope(model_cfg.get("type")) == "CascadeRCNN" else "StandardRoIHead"
    _expect(kind, "model.roi_head.type", (expected_kind,), f" for a {model_cfg.get('type')}")
    extractor = roi.get("bbox_roi_extractor") or {}
    _expect(_strip_scope(extractor.get("type")), "model.roi_head.bbox_roi_extractor.type", ("SingleRoIExtractor",))
    layer = extractor.get("roi_layer") or {}
    _expect(_strip_scope(layer.get("type")), "model.roi_head.bbox_roi_extractor.roi_layer.type", ("RoIAlign",))
    if layer.get("pool_mode", "avg") != "avg":
        raise UnsupportedArchitectureError("RoIAlign with pool_mode='max' is not supported.")
    output_size = layer.get("output_size", 7)
    if isinstance(output_size, (list, tuple)):
        if len(set(output_size)) != 1:
            raise UnsupportedArchitectureError(f"Non-square RoIAlign output_size {output_size} is not supported.")
        output_size = output_size[0]
    cascade: dict[str, Any] = {}
    if kind == "CascadeRoIHead":
        cascade = _cascade_settings(roi, model, model_cfg, output_size)
        head = roi["bbox_head"][-1]
    else:
        head = roi.get("bbox_head") or {}
    if roi.get("shared_head") is not None:
        settings = _shared_res5_settings(roi["shared_head"], head, model, output_size)
    else:
        settings = _fc_box_head_settings(head, model, output_size)
    if not head.get("with_cls", True) or not head.get("with_reg", True):
        raise UnsupportedArchitectureError("Box heads without a classification or regression branch are not supported.")
    loss_cls = head.get("loss_cls") or {}
    if loss_cls.get("use_sigmoid", False):
        raise UnsupportedArchitectureError("A sigmoid-classified box head is not supported (Faster R-CNN uses softmax).")
    num_classes = head.get("num_classes")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise MMDetConfigError(f"`model.roi_head.bbox_head.num_classes` must be a positive integer, got {num_classes!r}.")
    coder = _box_coder(head.get("bbox_coder") or {}, "model.roi_head.bbox_head.bbox_coder", (0.0,) * 4, (0.1, 0.1, 0.2, 0.2))
    settings.update(
        {
            "roi_output_size": output_size,
            "roi_sampling_ratio": layer.get("sampling_ratio", 0),
            "roi_aligned": bool(layer.get("aligned", True)),
            "roi_finest_scale": float(extractor.get("finest_scale", 56)),
            "roi_featmap_strides": _ints(
                extractor.get("featmap_strides"), "model.roi_head.bbox_roi_extractor.featmap_strides"
            ),
            "reg_class_agnostic": bool(head.get("reg_class_agnostic", False)),
            "box_coder_means": coder[0],
            "box_coder_stds": coder[1],
            **cascade,
        }
    )
    return settings, num_classes


def _mask_settings(config: dict[str, Any], model: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """`mask_head` from a Mask R-CNN's `roi_head.mask_head` (`FCNMaskHead`) and `roi_head.mask_roi_extractor`, or
    nothing for a box detector. Every setting that would change the masks is either mapped or refused."""
    roi = _require_dict(config, "model.roi_head")
    head, extractor = roi.get("mask_head"), roi.get("mask_roi_extractor")
    is_mask_rcnn = _strip_scope(_section(config, "model.type")) == "MaskRCNN"
    if _strip_scope(roi.get("type")) == "CascadeRoIHead" and head is not None:
        head, extractor = _cascade_mask_parts(roi, head, extractor)
    if head is None and extractor is None:
        if is_mask_rcnn:
            raise MMDetConfigError("A MaskRCNN config needs `model.roi_head.mask_head` and `mask_roi_extractor`.")
        return {}
    if not isinstance(head, dict) or not isinstance(extractor, dict):
        raise MMDetConfigError(
            "`model.roi_head.mask_head` and `model.roi_head.mask_roi_extractor` must both be given (as mappings), "
            f"got {head!r} and {extractor!r}."
        )
    path = "model.roi_head.mask_head"
    _expect(_strip_scope(head.get("type")), f"{path}.type", ("FCNMaskHead",))
    upsample = head.get("upsample_cfg") or {"type": "deconv", "scale_factor": 2}
    _expect(_strip_scope(upsample.get("type")), f"{path}.upsample_cfg.type", ("deconv",))
    for key, allowed in (("conv_kernel_size", (3,)), ("conv_cfg", (None,)), ("norm_cfg", (None,)),
                         ("predictor_cfg", (None, {"type": "Conv"}))):  # fmt: skip
        default = 3 if key == "conv_kernel_size" else None
        _expect(head.get(key, default), f"{path}.{key}", allowed)
    if head.get("in_channels", model["_feature_channels"]) != model["_feature_channels"]:
        raise MMDetConfigError(
            f"`{path}.in_channels` = {head.get('in_channels')} differs from the feature channels "
            f"({model['_feature_channels']})."
        )
    if head.get("num_classes", num_classes) != num_classes:
        raise MMDetConfigError(
            f"`{path}.num_classes` = {head.get('num_classes')} differs from the box head's {num_classes}."
        )
    extractor_path = "model.roi_head.mask_roi_extractor"
    _expect(_strip_scope(extractor.get("type")), f"{extractor_path}.type", ("SingleRoIExtractor",))
    layer = extractor.get("roi_layer") or {}
    _expect(_strip_scope(layer.get("type")), f"{extractor_path}.roi_layer.type", ("RoIAlign",))
    if layer.get("pool_mode", "avg") != "avg":
        raise UnsupportedArchitectureError(f"`{extractor_path}.roi_layer.pool_mode` = 'max' is not supported.")
    output_size = layer.get("output_size", 14)
    if isinstance(output_size, (list, tuple)):
        if len(set(output_size)) != 1:
            raise UnsupportedArchitectureError(f"Non-square mask RoIAlign output_size {output_size} is not supported.")
        output_size = output_size[0]
    if head.get("roi_feat_size", 14) != output_size:
        raise MMDetConfigError(f"`{path}.roi_feat_size` differs from `{extractor_path}.roi_layer.output_size`.")
    strides = _ints(extractor.get("featmap_strides"), f"{extractor_path}.featmap_strides")
    finest_scale = float(extractor.get("finest_scale", 56))
    if strides != model["roi_featmap_strides"] or finest_scale != model["roi_finest_scale"]:
        raise UnsupportedArchitectureError(
            f"`{extractor_path}` pools from other levels than the box RoI extractor (featmap_strides {strides}, "
            f"finest_scale {extractor.get('finest_scale', 56)}); only a shared level rule is supported."
        )
    if extractor.get("out_channels", model["_feature_channels"]) != model["_feature_channels"]:
        raise MMDetConfigError(f"`{extractor_path}.out_channels` differs from the feature channels.")
    threshold = _section(config, "model.test_cfg.rcnn.mask_thr_binary")
    threshold = 0.5 if threshold is None else threshold
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0 <= threshold <= 1:
        raise UnsupportedArchitectureError(
            f"`model.test_cfg.rcnn.mask_thr_binary` = {threshold!r} is not supported: binary masks need a threshold "
            "in [0, 1] (a negative one asks mmdetection for soft masks)."
        )
    return {
        "mask_head": {
            "roi_output_size": output_size,
            "roi_sampling_ratio": layer.get("sampling_ratio", 0),
            "roi_aligned": bool(layer.get("aligned", True)),
            "num_convs": head.get("num_convs", 4),
            "conv_channels": head.get("conv_out_channels", 256),
            "upsample_ratio": upsample.get("scale_factor", 2),
            "class_agnostic": bool(head.get("class_agnostic", False)),
            "mask_threshold": float(threshold),
        }
    }


def _cascade_mask_parts(roi: dict[str, Any], head: Any, extractor: Any) -> tuple[Any, Any]:
    """A Cascade Mask R-CNN's mask head and mask RoI extractor: mmdetection gives each stage its own (copies of one
    dict, or a list of one per stage); they must all be alike, which one `mask_head` setting describes."""
    num_stages = roi.get("num_stages")
    if roi.get("share_roi_extractor", False) or extractor is None:
        raise UnsupportedArchitectureError(
            "A Cascade Mask R-CNN without its own `model.roi_head.mask_roi_extractor` (share_roi_extractor) is not "
            "supported."
        )
    parts = []
    for name, value in (("mask_head", head), ("mask_roi_extractor", extractor)):
        if isinstance(value, (list, tuple)):
            if len(value) != num_stages or any(item != value[0] for item in value):
                raise UnsupportedArchitectureError(
                    f"`model.roi_head.{name}` differs between the cascade stages; only stages that share one "
                    f"{name} setting are supported."
                )
            value = value[0]
        parts.append(value)
    return parts[0], parts[1]


def _cascade_settings(
    roi: dict[str, Any], model: dict[str, Any], model_cfg: dict[str, Any], output_size: int
) -> dict[str, Any]:
    """`cascade_stages` from a `CascadeRoIHead`: each stage's coder stds, training IoU threshold and loss weight.

    The stages must share one box-head layout, class count and coder means (one `FasterRCNNConfig` field each), and
    regress class-agnostic boxes, as every mmdetection Cascade R-CNN config has them.
    """
    heads = roi.get("bbox_head")
    num_stages = roi.get("num_stages")
    if not isinstance(num_stages, int) or num_stages < 1:
        raise MMDetConfigError(f"`model.roi_head.num_stages` must be a positive integer, got {num_stages!r}.")
    if not isinstance(heads, (list, tuple)) or len(heads) != num_stages or not all(isinstance(h, dict) for h in heads):
        raise MMDetConfigError(
            f"`model.roi_head.bbox_head` must be a list of {num_stages} box heads (num_stages), got {heads!r}."
        )
    weights = _numbers(roi.get("stage_loss_weights"), "model.roi_head.stage_loss_weights")
    if len(weights) != num_stages:
        raise MMDetConfigError(f"`model.roi_head.stage_loss_weights` must have {num_stages} entries, got {weights}.")
    thresholds = _cascade_iou_thresholds(model_cfg, num_stages)
    stages, layouts = [], []
    for index, head in enumerate(heads):
        path = f"model.roi_head.bbox_head.{index}"
        if _strip_scope(head.get("type")) in SHARED_HEAD_BOX_HEADS or roi.get("shared_head") is not None:
            raise UnsupportedArchitectureError("Cascade R-CNN with a shared res5 head (C4) is not supported.")
        layouts.append(_fc_box_head_settings(head, model, output_size))
        if head.get("reg_class_agnostic", False) is not True:
            raise UnsupportedArchitectureError(
                f"`{path}.reg_class_agnostic` must be True: only class-agnostic cascade stages are supported."
            )
        if (head.get("loss_cls") or {}).get("use_sigmoid", False):
            raise UnsupportedArchitectureError(f"`{path}` is sigmoid-classified; only softmax box heads are supported.")
        means, stds = _box_coder(head.get("bbox_coder") or {}, f"{path}.bbox_coder", (0.0,) * 4, (0.1, 0.1, 0.2, 0.2))
        layouts[-1] = {**layouts[-1], "num_classes": head.get("num_classes"), "box_coder_means": means}
        stages.append({"box_coder_stds": stds, "iou_threshold": thresholds[index], "loss_weight": weights[index]})
    if any(layout != layouts[0] for layout in layouts):
        raise UnsupportedArchitectureError(
            "The cascade stages' box heads differ in layout, class count or coder means "
            f"({layouts}); only stages that share them are supported."
        )
    return {"cascade_stages": stages}


def _cascade_iou_thresholds(model_cfg: dict[str, Any], num_stages: int) -> list[float]:
    # Each stage trains on RoIs its own `train_cfg.rcnn[s].assigner.pos_iou_thr` calls positive.
    rcnn = _section(model_cfg, "train_cfg.rcnn")
    if rcnn is None:
        raise MMDetConfigError(
            "A Cascade R-CNN config needs `model.train_cfg.rcnn`, one assigner per stage (their IoU thresholds)."
        )
    if not isinstance(rcnn, (list, tuple)) or len(rcnn) != num_stages:
        raise MMDetConfigError(f"`model.train_cfg.rcnn` must be a list of {num_stages} stage settings, got {rcnn!r}.")
    thresholds = []
    for index, stage in enumerate(rcnn):
        value = _section(stage, "assigner.pos_iou_thr") if isinstance(stage, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise MMDetConfigError(
                f"`model.train_cfg.rcnn.{index}.assigner.pos_iou_thr` must be a number, got {value!r}."
            )
        thresholds.append(float(value))
    return thresholds


def _fc_box_head_settings(head: dict[str, Any], model: dict[str, Any], output_size: int) -> dict[str, Any]:
    """FPN and DC5 models: fully connected layers on the flattened RoIAlign output."""
    kind = _strip_scope(head.get("type"))
    if kind in SHARED_HEAD_BOX_HEADS:
        raise UnsupportedArchitectureError(
            f"`model.roi_head.bbox_head.type` = {kind!r} without a `model.roi_head.shared_head` is not supported: "
            f"it is supported after a C4 shared res5 head; on its own, use one of {list(SUPPORTED_BOX_HEADS)}."
        )
    _expect(kind, "model.roi_head.bbox_head.type", SUPPORTED_BOX_HEADS)
    num_fcs = 2
    if kind == "ConvFCBBoxHead":
        for key in ("num_shared_convs", "num_cls_convs", "num_cls_fcs", "num_reg_convs", "num_reg_fcs"):
            if head.get(key, 0):
                raise UnsupportedArchitectureError(f"`model.roi_head.bbox_head.{key}` = {head[key]} is not supported.")
        num_fcs = head.get("num_shared_fcs", 0)
    if head.get("with_avg_pool", False):
        raise UnsupportedArchitectureError("Fully connected box heads with average pooling are not supported.")
    if head.get("roi_feat_size", output_size) != output_size:
        raise MMDetConfigError("`model.roi_head.bbox_head.roi_feat_size` differs from the RoIAlign output_size.")
    if head.get("in_channels", model["_feature_channels"]) != model["_feature_channels"]:
        raise MMDetConfigError(
            f"`model.roi_head.bbox_head.in_channels` = {head['in_channels']} differs from the "
            f"{model['_feature_channels']} channels of the feature maps RoIs are pooled from."
        )
    return {"roi_head_type": "fc", "box_head_fc_channels": head.get("fc_out_channels", 1024), "box_head_num_fcs": num_fcs}


def _shared_res5_settings(
    shared: dict[str, Any], head: dict[str, Any], model: dict[str, Any], output_size: int
) -> dict[str, Any]:
    """C4 models: the res5 stage on every RoI (`ResLayer` shared head), average pooling, then the predictors."""
    path = "model.roi_head.shared_head"
    _expect(_strip_scope(shared.get("type")), f"{path}.type", ("ResLayer",))
    _expect(shared.get("stage", SHARED_RES5_STAGE), f"{path}.stage", (SHARED_RES5_STAGE,), " (only the res5 stage)")
    _expect(shared.get("depth"), f"{path}.depth", (model["backbone_depth"],), " (it must be the backbone's depth)")
    _expect(
        shared.get("style", "pytorch"), f"{path}.style", (model["backbone_style"],), " (it must be the backbone's style)"
    )
    norm = shared.get("norm_cfg") or {"type": "BN"}
    _expect(norm.get("type"), f"{path}.norm_cfg.type", ("BN", "SyncBN"), " (only BatchNorm)")
    if float(norm.get("eps", 1e-5)) != model["norm_eps"]:
        raise UnsupportedArchitectureError(f"`{path}.norm_cfg.eps` differs from the backbone's; not supported.")
    if shared.get("dcn") is not None:
        raise UnsupportedArchitectureError(f"`{path}.dcn` (deformable convolutions) is not supported.")
    if model["neck_type"] != "none" or model["backbone_num_stages"] != SHARED_RES5_STAGE:
        raise UnsupportedArchitectureError(
            f"A `{path}` (res5 on every RoI) needs the C4 layout: a backbone with num_stages="
            f"{SHARED_RES5_STAGE} and no neck; got num_stages={model['backbone_num_stages']} and "
            f"{'an FPN' if model['neck_type'] == 'fpn' else 'no neck'}."
        )
    kind = _strip_scope(head.get("type"))
    _expect(kind, "model.roi_head.bbox_head.type", SHARED_HEAD_BOX_HEADS, " after a shared res5 head")
    if not head.get("with_avg_pool", False):
        raise UnsupportedArchitectureError(
            "`model.roi_head.bbox_head.with_avg_pool` must be True after a shared res5 head (C4)."
        )
    stride, dilation = shared.get("stride", 2), shared.get("dilation", 1)
    pooled_size = (output_size - 1) // stride + 1
    if head.get("roi_feat_size", 7) != pooled_size:
        raise MMDetConfigError(
            f"`model.roi_head.bbox_head.roi_feat_size` = {head.get('roi_feat_size', 7)} is not the {pooled_size}x"
            f"{pooled_size} size res5 (stride {stride}) makes of the {output_size}x{output_size} RoIAlign output."
        )
    res5_channels = _stage_channels(model, SHARED_RES5_STAGE)
    if head.get("in_channels", 256) != res5_channels:
        raise MMDetConfigError(
            f"`model.roi_head.bbox_head.in_channels` = {head.get('in_channels', 256)} differs from the "
            f"{res5_channels} channels of the shared res5 head."
        )
    return {"roi_head_type": "shared_res5", "shared_res5_stride": stride, "shared_res5_dilation": dilation}


def _test_settings(config: dict[str, Any]) -> dict[str, Any]:
    # mmdetection 2.x/3.x keep test_cfg inside `model`; some 2.0-era configs keep it at the top level.
    test_cfg = _section(config, "model.test_cfg") or config.get("test_cfg")
    if not isinstance(test_cfg, dict) or "rpn" not in test_cfg or "rcnn" not in test_cfg:
        raise MMDetConfigError("The config has no `model.test_cfg` with `rpn` and `rcnn` sections.")
    rpn, rcnn = test_cfg["rpn"], test_cfg["rcnn"]
    rpn_nms = rpn.get("nms") or {"type": "nms", "iou_threshold": rpn.get("nms_thr", 0.7)}
    _expect(rpn_nms.get("type", "nms"), "model.test_cfg.rpn.nms.type", ("nms",))
    if rpn.get("nms_across_levels", False):
        raise UnsupportedArchitectureError("`model.test_cfg.rpn.nms_across_levels=True` is not supported.")
    rcnn_nms = rcnn.get("nms") or {}
    return {
        **_rcnn_nms_settings(rcnn_nms),
        "rpn_nms_pre": rpn.get("nms_pre", 1000),
        "rpn_nms_iou_threshold": float(rpn_nms.get("iou_threshold", rpn_nms.get("iou_thr", 0.7))),
        "rpn_max_per_img": rpn.get("max_per_img", rpn.get("max_num", 1000)),
        "rpn_min_bbox_size": float(rpn.get("min_bbox_size", 0)),
        "rcnn_score_threshold": float(rcnn.get("score_thr", 0.05)),
        "rcnn_max_per_img": rcnn.get("max_per_img", 100),
    }


def _rcnn_nms_settings(rcnn_nms: dict[str, Any]) -> dict[str, Any]:
    """The box head's per-class suppression: NMS, or soft-NMS with mmcv's defaults (linear, sigma 0.5, min 1e-3)."""
    kind = rcnn_nms.get("type", "nms")
    _expect(kind, "model.test_cfg.rcnn.nms.type", ("nms", "soft_nms"))
    settings: dict[str, Any] = {
        "rcnn_nms_type": kind,
        "rcnn_nms_iou_threshold": float(rcnn_nms.get("iou_threshold", rcnn_nms.get("iou_thr", 0.5))),
    }
    if kind == "soft_nms":
        method = rcnn_nms.get("method", "linear")
        _expect(method, "model.test_cfg.rcnn.nms.method", SOFT_NMS_METHODS)
        settings["rcnn_soft_nms_method"] = method
        settings["rcnn_soft_nms_sigma"] = float(rcnn_nms.get("sigma", 0.5))
        settings["rcnn_soft_nms_min_score"] = float(rcnn_nms.get("min_score", 1e-3))
    return settings


def _test_pipeline(config: dict[str, Any]) -> list[dict[str, Any]] | None:
    for path in ("test_dataloader.dataset.pipeline", "data.test.pipeline", "test_pipeline", "val_dataloader.dataset.pipeline"):
        pipeline = _section(config, path)
        if isinstance(pipeline, (list, tuple)):
            return list(pipeline)
    return None


def _flatten_pipeline(pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # mmdetection 2.x nests the test transforms inside MultiScaleFlipAug.
    steps = []
    for step in pipeline:
        if _strip_scope(step.get("type")) == "MultiScaleFlipAug":
            scale = step.get("img_scale", step.get("scale"))
            if isinstance(scale, list):
                if len(scale) != 1:
                    raise UnsupportedArchitectureError(f"Multi-scale testing (img_scale={scale}) is not supported.")
                scale = scale[0]
            if step.get("flip", False):
                raise UnsupportedArchitectureError("Flip test-time augmentation is not supported.")
            for inner in step.get("transforms", []):
                inner = dict(inner)
                if _strip_scope(inner.get("type")) == "Resize" and scale is not None:
                    inner.setdefault("scale", scale)
                steps.append(inner)
        else:
            steps.append(step)
    return steps


def _processor_settings(config: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    pipeline = _test_pipeline(config)
    if pipeline is None:
        raise MMDetConfigError(
            "The config has no test pipeline (test_dataloader.dataset.pipeline, data.test.pipeline or "
            "test_pipeline), so the test image scale is unknown."
        )
    steps = _flatten_pipeline(pipeline)
    processor: dict[str, Any] = {}
    resizes = [step for step in steps if _strip_scope(step.get("type")) == "Resize"]
    if len(resizes) != 1:
        raise UnsupportedArchitectureError(
            f"The test pipeline must have exactly one Resize step, found {len(resizes)}: {steps}."
        )
    resize = resizes[0]
    if not resize.get("keep_ratio", True):
        raise UnsupportedArchitectureError("A test Resize without keep_ratio is not supported.")
    scale = resize.get("scale", resize.get("img_scale"))
    if isinstance(scale, list) and len(scale) == 1 and isinstance(scale[0], (list, tuple)):
        scale = scale[0]
    if not isinstance(scale, (list, tuple)) or len(scale) != 2 or not all(isinstance(side, int) for side in scale):
        raise UnsupportedArchitectureError(f"The test Resize scale must be (long, short) integers, got {scale!r}.")
    processor["size"] = {"longest_edge": max(scale), "shortest_edge": min(scale)}
    _check_settings_that_change_pixels(steps)

    preprocessor = _section(config, "model.data_preprocessor")
    normalize = next((step for step in steps if _strip_scope(step.get("type")) == "Normalize"), None)
    if isinstance(preprocessor, dict) and "mean" in preprocessor:
        mean, std = preprocessor["mean"], preprocessor.get("std", (1.0, 1.0, 1.0))
        to_rgb = bool(preprocessor.get("bgr_to_rgb", False) or preprocessor.get("rgb_to_bgr", False))
        pad_divisor = preprocessor.get("pad_size_divisor", 1)
        if preprocessor.get("pad_value", 0) != 0:
            raise UnsupportedArchitectureError("A non-zero data_preprocessor.pad_value is not supported.")
    elif normalize is not None or isinstance(config.get("img_norm_cfg"), dict):
        norm = normalize if normalize is not None else config["img_norm_cfg"]
        mean, std, to_rgb = norm["mean"], norm.get("std", (1.0, 1.0, 1.0)), bool(norm.get("to_rgb", True))
        pad = next((step for step in steps if _strip_scope(step.get("type")) == "Pad"), None)
        pad_divisor = pad.get("size_divisor", 1) if pad is not None else 1
        if pad is not None and pad.get("pad_val", 0) not in (0, {"img": 0}, None):
            raise UnsupportedArchitectureError("A non-zero Pad.pad_val is not supported.")
    else:
        raise MMDetConfigError("The config says nothing about normalization (no data_preprocessor or Normalize step).")
    processor["image_mean"] = _numbers(mean, "mean")
    processor["image_std"] = _numbers(std, "std")
    # Images are read as BGR; `bgr_to_rgb`/`to_rgb` hands the network RGB, otherwise it sees BGR.
    processor["channel_order"] = "rgb" if to_rgb else "bgr"
    processor["pad_size_divisor"] = int(pad_divisor) if pad_divisor else 1
    if any(_strip_scope(step.get("type")) in ("RandomFlip",) and step.get("prob", 0) for step in steps):
        notes.append("The test pipeline has a RandomFlip with a probability; it is ignored at inference.")
    return processor


# Settings of the test pipeline's image reading and resizing that change the pixels the network sees:
# (step type, field, the value this package reproduces (mmdetection's default), what the value does).
_PIXEL_SETTINGS = (
    ("Resize", "interpolation", "bilinear", "the processor resizes with OpenCV's bilinear interpolation only"),
    ("Resize", "backend", "cv2", "the processor reproduces OpenCV's resize (cv2.resize), not Pillow's"),
    ("LoadImageFromFile", "imdecode_backend", "cv2", "images are decoded as OpenCV's cv2.imdecode decodes them"),
    ("LoadImageFromFile", "color_type", "color", "images are read as 3-channel colour (IMREAD_COLOR)"),
    ("LoadImageFromFile", "channel_order", "bgr", "images are read in OpenCV's BGR order before normalization"),
)


def _check_settings_that_change_pixels(steps: list[dict[str, Any]]) -> None:
    """Refuse, naming the field, a test pipeline whose image decoding or resize the processor cannot reproduce.

    Ignoring such a setting would convert without a word a model whose detections then differ from mmdetection's.
    """
    for step in steps:
        step_type = _strip_scope(step.get("type"))
        for owner, field, supported, meaning in _PIXEL_SETTINGS:
            if step_type != owner or field not in step:
                continue
            value = step[field]
            if value is not None and value != supported:
                raise UnsupportedArchitectureError(
                    f"The test pipeline's {owner}.{field} is {value!r}, which this package cannot reproduce "
                    f"({meaning}); only {supported!r}, mmdetection's default, converts. Set {field}={supported!r} "
                    "in the config's test pipeline if the model was evaluated that way, or leave the field out."
                )


def _dataset_info(config: dict[str, Any]) -> tuple[str | None, tuple[str, ...] | None]:
    for path in ("test_dataloader.dataset", "data.test", "val_dataloader.dataset"):
        dataset = _section(config, path)
        if isinstance(dataset, dict):
            dataset_type = _strip_scope(dataset.get("type"))
            if dataset_type == "RepeatDataset" and isinstance(dataset.get("dataset"), dict):
                dataset = dataset["dataset"]
                dataset_type = _strip_scope(dataset.get("type"))
            classes = (dataset.get("metainfo") or {}).get("classes") or dataset.get("classes")
            return dataset_type, tuple(classes) if isinstance(classes, (list, tuple)) else None
    dataset_type = config.get("dataset_type")
    return (dataset_type if isinstance(dataset_type, str) else None), None
