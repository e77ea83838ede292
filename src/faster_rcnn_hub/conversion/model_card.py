"""Rendering the model card (README.md with Hub metadata) of a converted model."""

from __future__ import annotations

import json
from importlib import resources
from string import Template

from ..configuration_faster_rcnn import FasterRCNNConfig
from ..image_processing_faster_rcnn import FasterRCNNImageProcessor

_DATASET_IDS = {80: "coco", 20: "pascal_voc", 8: "cityscapes"}


def _template() -> Template:
    text = resources.files("faster_rcnn_hub").joinpath("model_card_template.md").read_text(encoding="utf-8")
    return Template(text)


def _backbone_name(config: FasterRCNNConfig) -> str:
    if config.backbone_groups > 1:
        return f"ResNeXt-{config.backbone_depth} {config.backbone_groups}x{config.backbone_base_width}d"
    return f"ResNet-{config.backbone_depth}"


def _dilation_note(config: FasterRCNNConfig) -> str:
    if all(dilation == 1 for dilation in config.backbone_dilations):
        return ""
    return f", dilations {config.backbone_dilations}"


def _neck_description(config: FasterRCNNConfig) -> str:
    if config.neck_type == "fpn":
        return f"FPN, {config.fpn_out_channels} channels, {config.fpn_num_outs} levels"
    return f"none: the heads read the backbone's stride-{config.backbone_out_strides[0]} map ({config.feature_channels} channels)"


def _roi_head_description(config: FasterRCNNConfig) -> str:
    pooled = f"RoIAlign {config.roi_output_size}x{config.roi_output_size}"
    if config.roi_head_type == "shared_res5":
        return f"{pooled}, shared res5 stage (stride {config.shared_res5_stride}), average pooling"
    return f"{pooled}, {config.box_head_num_fcs} FC x {config.box_head_fc_channels}"


def _nms_description(config: FasterRCNNConfig) -> str:
    if config.rcnn_nms_type == "soft_nms":
        return (
            f"soft-NMS ({config.rcnn_soft_nms_method}, IoU {config.rcnn_nms_iou_threshold}, sigma "
            f"{config.rcnn_soft_nms_sigma}, min score {config.rcnn_soft_nms_min_score})"
        )
    return f"NMS {config.rcnn_nms_iou_threshold}"


def render_model_card(
    config: FasterRCNNConfig,
    processor: FasterRCNNImageProcessor,
    notes: list[str],
    model_id: str = ".",
) -> str:
    """The model card of a converted model, from `model_card/template.md`."""
    source = config.source or {}
    names = [config.id2label[index] for index in range(config.num_classes)]
    preview = ", ".join(names[:12]) + (f", ... ({len(names) - 12} more)" if len(names) > 12 else "")
    architecture = [
        ("backbone", f"{_backbone_name(config)}, {config.backbone_style} style{_dilation_note(config)}"),
        ("neck", _neck_description(config)),
        ("anchors", f"scales {config.anchor_scales}, ratios {config.anchor_ratios}, strides {config.anchor_strides}"),
        ("RPN (test)", f"top {config.rpn_nms_pre} per level, NMS {config.rpn_nms_iou_threshold}, keep {config.rpn_max_per_img}"),
        ("RoI head", _roi_head_description(config)),
        ("detections (test)", f"score > {config.rcnn_score_threshold}, {_nms_description(config)}, at most {config.rcnn_max_per_img}"),
        ("input", f"resize to fit {processor.size['longest_edge']}x{processor.size['shortest_edge']}, {processor.channel_order.upper()}, mean {processor.image_mean}, std {processor.image_std}"),
    ]
    source_rows = [
        ("checkpoint", source.get("checkpoint")),
        ("SHA-256", source.get("sha256")),
        ("mmdetection config", source.get("config")),
        ("source URL", source.get("url")),
        ("mmdetection version", source.get("mmdet_version")),
    ]
    tags = ["object-detection", "vision", "faster-rcnn", "mmdetection"]
    dataset = _DATASET_IDS.get(config.num_classes)
    notes_text = ""
    if notes:
        notes_text = "## Conversion notes\n\n" + "".join(f"- {note}\n" for note in notes) + "\n"
    return _template().substitute(
        tags=json.dumps(tags),
        datasets=json.dumps([dataset] if dataset else []),
        title=f"Faster R-CNN {_backbone_name(config)} {config.layout_name} ({source.get('checkpoint') or 'converted'})",
        backbone_name=_backbone_name(config),
        layout=config.layout_name,
        num_classes=config.num_classes,
        class_preview=preview,
        model_id=model_id,
        architecture_rows="\n".join(f"| {name} | {value} |" for name, value in architecture),
        source_rows="\n".join(f"| {name} | {value if value else 'unknown'} |" for name, value in source_rows),
        notes=notes_text,
    )
