"""The study's result as Markdown tables (the report, README and the default model's card carry the same), and the
section of a model card that holds them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import FasterRCNNHubError

CARD_SECTION_START = "<!-- proposal-study:start -->"
CARD_SECTION_END = "<!-- proposal-study:end -->"
REPORT_FILE = "report.md"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def proposal_table(result: dict[str, Any]) -> str:
    """Recall at 300 and 2000 proposals (IoU 0.5, 0.7), average recall, proposals per image, and time per image."""
    lines = [
        "| proposals | ms / image | proposals / image | recall@300, IoU 0.5 | @300, 0.7 | AR@300 | recall@2000, IoU 0.5 "
        "| @2000, 0.7 | AR@2000 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, method in result["proposals"]["methods"].items():
        recall_at = method["recall_at"]
        average = dict(zip(method["budgets"], method["average_recall"]))
        time_text = f"{method['ms_per_image']:.1f}"
        if "rpn_only_ms_per_image" in method:
            time_text += f" ({method['rpn_only_ms_per_image']:.1f} RPN alone)"
        lines.append(
            f"| {method['label']} | {time_text} | {method['mean_proposals']:.0f} | {_percent(recall_at['300@0.5'])} "
            f"| {_percent(recall_at['300@0.7'])} | {_percent(average[300])} | {_percent(recall_at['2000@0.5'])} "
            f"| {_percent(recall_at['2000@0.7'])} | {_percent(average[2000])} |"
        )
    return "\n".join(lines)


def detection_table(result: dict[str, Any]) -> str:
    """AP, AP50, AP75 and VOC mAP@0.5 of both detectors, and their time per image."""
    lines = [
        "| detector | proposals at test time | AP | AP50 | AP75 | VOC mAP@0.5 | selective search ms | network ms "
        "| total ms / image |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = {"faster_rcnn": "Faster R-CNN", "fast_rcnn": "Fast R-CNN"}
    for key, detector in result["detection"]["detectors"].items():
        lines.append(
            f"| {names.get(key, key)} | {detector['proposals']} | {detector['AP']:.3f} | {detector['AP50']:.3f} "
            f"| {detector['AP75']:.3f} | {detector['VOC_mAP50']:.3f} | {detector['external_proposal_ms_per_image']:.1f} "
            f"| {detector['network_ms_per_image']:.1f} | {detector['total_ms_per_image']:.1f} |"
        )
    return "\n".join(lines)


def render_report(result: dict[str, Any], command: str) -> str:
    """The Markdown summary of a run: both tables and how they were measured."""
    proposals = result["proposals"]
    machine = result["machine"]
    load = result.get("load_average", {})
    parts = [
        "## Proposals: RPN against selective search",
        "",
        f"{proposals['images']} images, {proposals['objects']} objects (`{result['settings']['evaluation_set']}`); "
        f"RPN of `{proposals['model']}` with NMS at IoU {proposals['rpn_settings']['nms_iou_threshold']}, up to "
        f"{proposals['rpn_settings']['max_per_image']} proposals; selective search by OpenCV {machine['opencv']} "
        "(`ximgproc.segmentation`). Recall in % of the objects (one-to-one matching, mmdetection's `eval_recalls`); "
        "AR: mean recall over IoU 0.5:0.95. Time from the decoded image to the boxes; the RPN's includes the "
        "image processor, backbone and FPN, and in brackets its own head and proposal step, which is all it adds "
        "to a detector that computes those features anyway.",
        "",
        proposal_table(result),
        "",
    ]
    if "detection" in result:
        detection = result["detection"]
        schedule = detection["schedule"]
        parts += [
            "## Detection: Fast R-CNN on selective search against Faster R-CNN",
            "",
            "Same architecture, recipe (the default model's: AdamW, cosine decay, "
            f"{schedule['max_steps']} steps of {schedule['batch_size']} images, from scratch), seed and training set "
            f"(`{detection['training_set']}`); evaluated on `{detection['evaluation_set']}`, one image per forward "
            "pass. The Fast R-CNN trains and detects on selective search's first 2000 boxes of each image (fast "
            "mode, as in the paper); the Faster R-CNN on its RPN's proposals (its test-time settings). Time: "
            "selective search (measured above) plus the network, reading the image file included.",
            "",
            detection_table(result),
            "",
        ]
    parts += [
        f"Measured with `{command}` on {machine['processor']}, {machine['cpus']} CPUs, torch {machine['torch']}, "
        f"{result['settings']['threads']} thread(s) for PyTorch and OpenCV; load average {load.get('start')} at the "
        f"start and {load.get('end')} at the end (a machine shared with other jobs); {result['wall_minutes']:.1f} "
        "min wall in all.",
        "",
    ]
    return "\n".join(parts)


def update_model_card(card_path: Path, report: str) -> None:
    """Put `report` into the card's proposal-study section (between its markers), or append the section."""
    if not card_path.is_file():
        raise FasterRCNNHubError(f"Model card not found: {card_path}")
    text = card_path.read_text(encoding="utf-8")
    section = f"{CARD_SECTION_START}\n{report.rstrip()}\n{CARD_SECTION_END}"
    start, end = text.find(CARD_SECTION_START), text.find(CARD_SECTION_END)
    if start >= 0 and end > start:
        text = text[:start] + section + text[end + len(CARD_SECTION_END):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    temporary = card_path.with_name(f".tmp-{card_path.name}")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(card_path)


__all__ = ["REPORT_FILE", "detection_table", "proposal_table", "render_report", "update_model_card"]
