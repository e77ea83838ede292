"""Cascade R-CNN against Faster R-CNN trained side by side with the default model's recipe, cut short.

    python benchmarks/cascade_training.py --steps 300 --train-images 1000 --held-out-images 100 \\
        --json benchmarks/results-cascade-training.json

Both detectors are the default recipe's network (training/default_recipe.py: `default_config`, its processor,
its AdamW options and seed), trained from scratch on the same synthetic images for the same steps; the cascade adds
mmdetection's three stages (`cascade_stages`: stds 0.1/0.1/0.2/0.2, 0.05/0.05/0.1/0.1, 0.033/0.033/0.067/0.067,
IoU 0.5/0.6/0.7, loss weights 1/0.5/0.25) with class-agnostic regression. Each is then scored on the first images
of the recipe's held-out split (COCO box AP through pycocotools, as `evaluate`). Wall and CPU time of each
training run are recorded: on a shared machine only their ratio means something.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from faster_rcnn_hub.data.synthetic import SHAPE_CLASSES, SyntheticSpec, write_dataset
from faster_rcnn_hub.training.data import CocoDetectionDataset
from faster_rcnn_hub.training.default_recipe import (
    HELD_OUT_SEED,
    IMAGE_SIZE,
    MODEL_SEED,
    TRAIN_SEED,
    default_config,
    default_options,
    default_processor,
)
from faster_rcnn_hub.training.model_setup import new_model
from faster_rcnn_hub.training.trainer import DetectionTrainer

CASCADE_STAGES = [
    {"box_coder_stds": [0.1, 0.1, 0.2, 0.2], "iou_threshold": 0.5, "loss_weight": 1.0},
    {"box_coder_stds": [0.05, 0.05, 0.1, 0.1], "iou_threshold": 0.6, "loss_weight": 0.5},
    {"box_coder_stds": [0.033, 0.033, 0.067, 0.067], "iou_threshold": 0.7, "loss_weight": 0.25},
]
METRICS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")


def train_and_score(name: str, config: Any, train_set: Any, held_out: Any, steps: int, output: Path) -> dict:
    start = new_model(config, SHAPE_CLASSES, default_processor(), MODEL_SEED)
    options = default_options(output / name, progress_bar=False)
    options.max_steps = steps
    options.save_every = 10**9
    options.keep_checkpoints = 0
    options.warmup_steps = min(options.warmup_steps, max(steps // 10, 1))
    wall, cpu = time.perf_counter(), time.process_time()
    state = DetectionTrainer(start.model, start.processor, train_set, options, held_out).train()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    metrics = state.evaluations[-1]
    last_losses = [record["loss"] for record in state.log[-3:]]
    print(f"{name}: AP {metrics['AP']:.4f} AP50 {metrics['AP50']:.4f} AP75 {metrics['AP75']:.4f}, "
          f"{wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU", flush=True)  # fmt: skip
    return {"metrics": {key: metrics[key] for key in METRICS}, "train_wall_s": round(wall, 1),
            "train_cpu_s": round(cpu, 1), "last_logged_losses": last_losses}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--train-images", type=int, default=1000)
    parser.add_argument("--held-out-images", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {
        "steps": args.steps, "train_images": args.train_images, "train_seed": TRAIN_SEED,
        "held_out_images": args.held_out_images, "held_out_seed": HELD_OUT_SEED, "threads": args.threads,
        "platform": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "load_average_start": list(os.getloadavg()),
    }  # fmt: skip
    spec = SyntheticSpec(image_size=(IMAGE_SIZE, IMAGE_SIZE))
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        train_dir = write_dataset(work / "train", args.train_images, TRAIN_SEED, spec)
        held_out_dir = write_dataset(work / "held-out", args.held_out_images, HELD_OUT_SEED, spec)
        train_set = CocoDetectionDataset(train_dir / "annotations.json", train_dir / "images", SHAPE_CLASSES, True)
        held_out = CocoDetectionDataset(held_out_dir / "annotations.json", held_out_dir / "images", SHAPE_CLASSES)
        faster = default_config()
        cascade = default_config()
        cascade.cascade_stages = CASCADE_STAGES
        cascade.reg_class_agnostic = True
        cascade.validate()
        for name, config in (("faster_rcnn", faster), ("cascade_rcnn", cascade)):
            report[name] = train_and_score(name, config, train_set, held_out, args.steps, work / "runs")
    report["load_average_end"] = list(os.getloadavg())
    cpu_seconds = [report[name]["train_cpu_s"] for name in ("cascade_rcnn", "faster_rcnn")]
    report["cascade_train_cpu_ratio"] = round(cpu_seconds[0] / cpu_seconds[1], 2)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
