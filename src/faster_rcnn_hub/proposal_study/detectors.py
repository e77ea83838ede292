"""The detection comparison: a Fast R-CNN trained on selective-search proposals against a Faster R-CNN trained with
its RPN, same architecture, recipe, seed and data; each evaluated on held-out images for COCO AP and time.

The recipe is the default model's (`training/default_recipe.py`: a quarter-width ResNet-18 FPN trained from scratch
with AdamW), so the Faster R-CNN of the full synthetic run is the bundled default model itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..evaluation import coco_box_metrics, predict_coco_results, voc_mean_average_precision
from ..models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor
from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection
from ..training.checkpoint import latest_checkpoint
from ..training.data import CocoDetectionDataset
from ..training.default_recipe import MODEL_SEED, default_config, default_options, default_processor
from ..training.model_card import render_model_card
from ..training.model_setup import new_model
from ..training.trainer import DetectionTrainer, export_model, write_log

# The two arms: how each gets its proposals.
FASTER_RCNN = "faster_rcnn"
FAST_RCNN = "fast_rcnn"


@dataclass
class Schedule:
    """How long the recipe trains (the full recipe, or the `--small` one)."""

    max_steps: int
    batch_size: int
    warmup_steps: int
    save_every: int


def train_detector(
    arm: str,
    output_dir: Path,
    class_names: Sequence[str],
    train_set: CocoDetectionDataset,
    schedule: Schedule,
    progress_bar: bool,
    say: Callable[[str], None],
    device: Any = "cpu",
) -> dict[str, Any]:
    """Train one arm with the default model's recipe into `output_dir` (resuming an interrupted run there); returns
    what the report needs about the run. A finished run (the model folder exists) is reused as it is."""
    record_path = output_dir / "study_training.json"
    if record_path.is_file() and (output_dir / "model.safetensors").is_file():
        say(f"{arm}: reusing the trained model in {output_dir}")
        return json.loads(record_path.read_text(encoding="utf-8"))
    config = default_config()
    if arm == FAST_RCNN:
        config.proposal_source = "external"
    start = new_model(config, class_names, default_processor(), MODEL_SEED)
    run_dir = output_dir / "run"
    options = default_options(run_dir, progress_bar)
    options.max_steps, options.batch_size = schedule.max_steps, schedule.batch_size
    options.warmup_steps, options.save_every = schedule.warmup_steps, schedule.save_every
    trainer = DetectionTrainer(start.model.to(device), start.processor, train_set, options)
    resume = latest_checkpoint(run_dir) is not None
    say(f"{arm}: {'resuming' if resume else 'training'} ({schedule.max_steps} steps of {schedule.batch_size} images)")
    state = trainer.train(resume=resume)
    proposals = "selective search (fast mode) of each training image" if arm == FAST_RCNN else "its own RPN"
    card = render_model_card(
        title=f"faster-rcnn-hub proposal study: {'Fast R-CNN on selective search' if arm == FAST_RCNN else 'Faster R-CNN'}",
        config=trainer.model.config,
        processor_size=start.processor.size,
        summary=(
            f"One of the two detectors of `faster-rcnn-hub proposals-study`, trained on proposals from {proposals}. "
            + (
                "Its RPN is untrained: it detects only with `proposals` given (config `proposal_source: external`)."
                if arm == FAST_RCNN
                else ""
            )
        ),
        data=f"{len(train_set)} images of {train_set.annotation_file}.",
        recipe={key: value for key, value in options.__dict__.items() if key not in ("output_dir", "progress_bar", "epochs")},
        log=state.log,
        evaluations=state.evaluations,
        final_metrics=None,
        timing=f"{state.wall_seconds / 60:.1f} min wall, {state.cpu_seconds / 60:.1f} min CPU.",
    )
    export_model(output_dir, trainer.model, start.processor, model_card=card)
    write_log(output_dir, state)
    record = {
        "model": str(output_dir),
        "trained_by": "this study",
        "train_steps": state.global_step,
        "batch_size": options.batch_size,
        "train_wall_minutes": round(state.wall_seconds / 60, 2),
        "train_cpu_minutes": round(state.cpu_seconds / 60, 2),
    }
    record_path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record


def evaluate_detector(
    model_dir: Path, eval_set: CocoDetectionDataset, external_proposal_seconds: float, device: Any
) -> dict[str, Any]:
    """COCO AP (and VOC mAP@0.5) of a detector on `eval_set`, one image per forward pass, and its time per image.

    The network's time is the wall time of the whole evaluation pass divided by the images (reading each image
    file included, the same for both arms; the Faster R-CNN's RPN is part of it); `external_proposal_seconds`
    (selective search per image, for the Fast R-CNN; 0 for the Faster R-CNN) is added to give the end-to-end time.
    """
    model = FasterRCNNForObjectDetection.from_pretrained(str(model_dir)).to(device).eval()
    processor = FasterRCNNImageProcessor.from_pretrained(str(model_dir))
    start = time.perf_counter()
    results = predict_coco_results(model, processor, eval_set, eval_set.label_to_category_id, batch_size=1)
    network_seconds = (time.perf_counter() - start) / len(eval_set)
    metrics = coco_box_metrics(eval_set.coco, results)
    return {
        **{key: round(value, 4) for key, value in metrics.items() if key != "summary"},
        "VOC_mAP50": round(voc_mean_average_precision(eval_set.coco, results)["mAP"], 4),
        "detections": len(results),
        "external_proposal_ms_per_image": round(external_proposal_seconds * 1000, 2),
        "network_ms_per_image": round(network_seconds * 1000, 2),
        "total_ms_per_image": round((external_proposal_seconds + network_seconds) * 1000, 2),
    }


__all__ = ["FASTER_RCNN", "FAST_RCNN", "Schedule", "evaluate_detector", "train_detector"]
