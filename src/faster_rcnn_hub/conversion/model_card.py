"""Rendering the model card (README.md with Hub metadata) of a converted model."""

from __future__ import annotations

from importlib import resources
from string import Template

from huggingface_hub import EvalResult, ModelCardData

from ..models.faster_rcnn.configuration_faster_rcnn import FasterRCNNConfig
from ..models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor
from ..zoo import ZooEntry

# Hub dataset identifiers by class count, for checkpoints that are not in the model-zoo table.
_DATASET_IDS = {80: "coco", 20: "pascal_voc", 8: "cityscapes"}
TAGS = ["object-detection", "vision", "faster-rcnn", "mmdetection"]


def _template() -> Template:
    text = resources.files(__package__).joinpath("model_card_template.md").read_text(encoding="utf-8")
    return Template(text)


def _backbone_name(config: FasterRCNNConfig) -> str:
    if config.backbone_groups > 1:
        return f"ResNeXt-{config.backbone_depth} {config.backbone_groups}x{config.backbone_base_width}d"
    return f"ResNet-{config.backbone_depth}"


def card_metadata(config: FasterRCNNConfig, zoo_entry: ZooEntry | None = None) -> ModelCardData:
    """The card's Hub metadata, built with huggingface_hub's own classes so that it parses as the Hub parses it;
    `model-index` carries mmdetection's box AP when the checkpoint is in the model-zoo table."""
    if zoo_entry is not None and zoo_entry.hub_datasets:
        datasets = zoo_entry.hub_datasets
    else:
        datasets = [_DATASET_IDS[config.num_classes]] if config.num_classes in _DATASET_IDS else None
    eval_results = None
    if zoo_entry is not None and zoo_entry.box_ap is not None:
        eval_results = [
            EvalResult(
                task_type="object-detection",
                task_name="Object Detection",
                dataset_type=datasets[0] if datasets else "unknown",
                dataset_name=zoo_entry.eval_dataset,
                metric_type="mAP",
                metric_name="box AP",
                metric_value=zoo_entry.box_ap,
                source_name="mmdetection model zoo",
                source_url=zoo_entry.config_url,
            )
        ]
    return ModelCardData(
        library_name="transformers",
        pipeline_tag="object-detection",
        license="apache-2.0",
        tags=TAGS,
        datasets=datasets,
        model_name=zoo_entry.name if eval_results else None,
        eval_results=eval_results,
    )


def _dilation_note(config: FasterRCNNConfig) -> str:
    if all(dilation == 1 for dilation in config.backbone_dilations):
        return ""
    return f", dilations {config.backbone_dilations}"


def _neck_description(config: FasterRCNNConfig) -> str:
    if config.neck_type == "fpn":
        return f"FPN, {config.fpn_out_channels} channels, {config.fpn_num_outs} levels"
    return f"none: the heads read the backbone's stride-{config.backbone_out_strides[0]} map ({config.feature_channels} channels)"


def detector_name(config: FasterRCNNConfig) -> str:
    """mmdetection's name for the detector: Cascade R-CNN when the config has cascade stages, Mask R-CNN when it
    has a mask head."""
    if config.cascade_stages is not None:
        return "Cascade Mask R-CNN" if config.mask_head is not None else "Cascade R-CNN"
    return "Mask R-CNN" if config.mask_head is not None else "Faster R-CNN"


def _mask_head_description(config: FasterRCNNConfig) -> str:
    mask_head = config.mask_head
    size = mask_head["roi_output_size"]
    return (
        f"RoIAlign {size}x{size}, {mask_head['num_convs']} conv 3x3 x {mask_head['conv_channels']}, deconvolution "
        f"x{mask_head['upsample_ratio']}, {config.mask_size}x{config.mask_size} "
        f"{'class-agnostic masks' if mask_head['class_agnostic'] else 'masks per class'}, "
        f"pasted and binarised at {mask_head['mask_threshold']}"
    )


def _roi_head_description(config: FasterRCNNConfig) -> str:
    pooled = f"RoIAlign {config.roi_output_size}x{config.roi_output_size}"
    if config.cascade_stages is not None:
        thresholds = "/".join(str(stage["iou_threshold"]) for stage in config.cascade_stages)
        return (
            f"{pooled}, {config.num_cascade_stages} cascade stages of {config.box_head_num_fcs} FC x "
            f"{config.box_head_fc_channels} (training IoU {thresholds}), each refining the next stage's boxes; "
            "class scores from the mean of the stages' logits"
        )
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
    zoo_entry: ZooEntry | None = None,
) -> str:
    """The model card of a converted model, from `model_card/template.md`.

    Args:
        config: The converted model's config (its `source` says where the weights came from).
        processor: The converted image processor.
        notes: Conversion notes, listed in a section of their own.
        model_id: What the usage code loads: the folder's name (run from its parent) or a Hub repository id.
        zoo_entry: The model-zoo entry of the checkpoint, for the box AP, datasets and config link.
    """
    source = config.source or {}
    names = [config.id2label[index] for index in range(config.num_classes)]
    preview = ", ".join(names[:12]) + (f", ... ({len(names) - 12} more)" if len(names) > 12 else "")
    architecture = [
        ("backbone", f"{_backbone_name(config)}, {config.backbone_style} style{_dilation_note(config)}"),
        ("neck", _neck_description(config)),
        ("anchors", f"scales {config.anchor_scales}, ratios {config.anchor_ratios}, strides {config.anchor_strides}"),
        ("RPN (test)", f"top {config.rpn_nms_pre} per level, NMS {config.rpn_nms_iou_threshold}, keep {config.rpn_max_per_img}"),
        ("RoI head", _roi_head_description(config)),
        *([("mask head", _mask_head_description(config))] if config.mask_head is not None else []),
        ("detections (test)", f"score > {config.rcnn_score_threshold}, {_nms_description(config)}, at most {config.rcnn_max_per_img}"),
        ("input", f"resize to fit {processor.size['longest_edge']}x{processor.size['shortest_edge']}, "
                  f"{processor.channel_order.upper()}, mean {processor.image_mean}, std {processor.image_std}, "
                  f"padded to a multiple of {processor.pad_size_divisor}"),
    ]
    config_name = source.get("config")
    if zoo_entry is not None:
        config_name = f"[{zoo_entry.config_file}]({zoo_entry.config_url})"
    has_box_ap = zoo_entry is not None and zoo_entry.box_ap is not None
    source_rows = [
        ("mmdetection model zoo", f"[{zoo_entry.name}]({zoo_entry.collection_url})" if zoo_entry else None),
        ("mmdetection config", config_name),
        ("checkpoint", source.get("checkpoint")),
        ("source URL", source.get("url")),
        ("SHA-256", f"`{source['sha256']}`" if source.get("sha256") else None),
        ("trained on", zoo_entry.training_data if zoo_entry else None),
        ("box AP (mmdetection)", f"{zoo_entry.box_ap} on {zoo_entry.eval_dataset}" if has_box_ap else None),
        ("mmdetection version", source.get("mmdet_version")),
    ]
    box_ap_sentence = ""
    if has_box_ap:
        box_ap_sentence = (
            f" mmdetection reports a box AP of {zoo_entry.box_ap} on {zoo_entry.eval_dataset} for the original "
            "checkpoint (its published figure, not measured again here; the conversion is instead checked for "
            "parity with mmdetection's detections on reference images)."
        )
    notes_text = ""
    if notes:
        notes_text = "## Conversion notes\n\n" + "".join(f"- {note}\n" for note in notes) + "\n"
    title_name = zoo_entry.name if zoo_entry else (source.get("checkpoint") or "converted")
    return _template().substitute(
        metadata=card_metadata(config, zoo_entry).to_yaml(),
        detector=detector_name(config),
        title=f"{detector_name(config)} {_backbone_name(config)} {config.layout_name} ({title_name})",
        backbone_name=_backbone_name(config),
        layout=config.layout_name,
        num_classes=config.num_classes,
        class_preview=preview,
        box_ap_sentence=box_ap_sentence,
        model_id=model_id,
        architecture_rows="\n".join(f"| {name} | {value} |" for name, value in architecture),
        source_rows="\n".join(f"| {name} | {value} |" for name, value in source_rows if value),
        notes=notes_text,
    )
