"""The README.md model card of a model trained with this package: architecture, data, recipe, log, metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..models.faster_rcnn.configuration_faster_rcnn import FasterRCNNConfig

METRIC_COLUMNS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "VOC_mAP50")


def describe_architecture(config: FasterRCNNConfig) -> str:
    widths = config.backbone_out_channels
    return (
        f"Faster R-CNN, ResNet-{config.backbone_depth} backbone (base width {config.backbone_base_channels}, "
        f"stage outputs {config.backbone_out_indices} with {widths} channels), FPN {config.fpn_out_channels} "
        f"channels on strides {config.anchor_strides}, {config.num_anchors_per_location} anchors per location "
        f"(scales {config.anchor_scales}, ratios {config.anchor_ratios}), box head {config.box_head_num_fcs} x "
        f"{config.box_head_fc_channels} FC, {config.num_classes} classes"
    )


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    present = [column for column in columns if any(column in row for row in rows)]
    lines = ["| " + " | ".join(present) + " |", "|" + "---|" * len(present)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(column, "")) for column in present) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_model_card(
    title: str,
    config: FasterRCNNConfig,
    processor_size: Mapping[str, int],
    summary: str,
    data: str,
    recipe: Mapping[str, Any],
    log: Sequence[Mapping[str, Any]],
    evaluations: Sequence[Mapping[str, Any]],
    final_metrics: Mapping[str, Any] | None,
    timing: str,
    notes: Sequence[str] = (),
    size_mb: float | None = None,
) -> str:
    """A Markdown model card."""
    classes = ", ".join(config.id2label[index] for index in range(config.num_classes))
    parts = [
        "---",
        "library_name: transformers",
        "pipeline_tag: object-detection",
        "tags: [faster-rcnn, faster-rcnn-hub, object-detection]",
        "---",
        f"# {title}",
        "",
        summary,
        "",
        "## Model",
        "",
        f"- {describe_architecture(config)}.",
        f"- Classes: {classes}.",
        f"- Test scale: longest edge {processor_size['longest_edge']}, shortest edge {processor_size['shortest_edge']}.",
    ]
    if size_mb is not None:
        parts.append(f"- Weights: `model.safetensors`, {size_mb:.2f} MB.")
    parts += ["", "## Training data", "", data, "", "## Recipe", ""]
    parts += [f"- `{key}`: {value}" for key, value in recipe.items()]
    parts += ["", "## Evaluation", ""]
    if final_metrics:
        parts += [_table([final_metrics], METRIC_COLUMNS), ""]
        if final_metrics.get("summary"):
            parts += ["```", str(final_metrics["summary"]), "```", ""]
    parts += ["During training:", "", _table(evaluations, ("step", "stage", *METRIC_COLUMNS)), ""]
    parts += ["## Training log", "", timing, ""]
    loss_columns = ("step", "stage", "loss", "loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "lr", "wall_s",
                    "cpu_s")  # fmt: skip
    parts += [_table(log, loss_columns), ""]
    if notes:
        parts += ["## Departures from mmdetection's recipe", ""] + [f"- {note}" for note in notes] + [""]
    parts += [
        "## Use",
        "",
        "```python",
        "from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor",
        'model = FasterRCNNForObjectDetection.from_pretrained("path/to/this/folder").eval()',
        'processor = FasterRCNNImageProcessor.from_pretrained("path/to/this/folder")',
        "```",
        "",
    ]
    return "\n".join(parts)
