"""Where the PyTorch fused path's time goes on the full-size R50-FPN: one image, stage by stage, and the top operators.

    python benchmarks/profile_inference.py --threads 2 --json benchmarks/results-profile-cpu.json

Model: the fixtures' seeded full-size `r50_fpn_1x_coco` checkpoint, converted (as benchmark_inference.py), on its
default fused inference path; image `coffee.png` (resized to 800 x 1200, padded 800 x 1216). Each of `--runs`
rounds (after `--warmup`) times, with `time.perf_counter` around the processor and post-processing and forward
hooks on the model's modules:

- preprocessing: `processor(images=[array])` (decode excluded: the array is already RGB);
- backbone, FPN: the ResNet-50 and the FPN (their convolutions are nearly all of the FLOPs);
- RPN head: the RPN's 3x3 and 1x1 convolutions on every level;
- RPN proposals: the rest of the RPN (anchors, per-level top-k, decoding, clipping, proposal NMS);
- RoIAlign: multi-level pooling of the 1000 proposals;
- box head: the two fully connected layers and the predictor;
- detection: the rest of the RoI head (softmax, decoding, per-class NMS);
- forward other: the model's forward outside those modules (input checks, output padding);
- post-processing: `post_process_object_detection` (threshold 0.5).

Stages are medians over the rounds; shares are of the median total. A `torch.profiler` run of one more round lists
the operators with the most self CPU time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from benchmark_inference import IMAGES, load_rgb, machine_description, seeded_checkpoint_model

# Name -> the module (path in the model) whose forward calls are timed.
TIMED_MODULES = {
    "backbone": "backbone",
    "fpn": "fpn",
    "rpn": "rpn",
    "rpn_head": "rpn.head",
    "roi_heads": "roi_heads",
    "roi_align": "roi_heads.roi_align",
    "box_head": "roi_heads.box_head",
    "box_predictor": "roi_heads.box_predictor",
}


class ModuleTimer:
    """Forward pre/post hooks adding each timed module's wall time (per round) into `seconds`."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._starts: dict[str, float] = {}
        self._handles = []
        for name, path in TIMED_MODULES.items():
            module = model.get_submodule(path)
            self._handles.append(module.register_forward_pre_hook(self._start(name)))
            self._handles.append(module.register_forward_hook(self._stop(name)))

    def _start(self, name: str):  # noqa: ANN202
        def hook(module, args):  # noqa: ANN001, ANN202, ARG001
            self._starts[name] = time.perf_counter()

        return hook

    def _stop(self, name: str):  # noqa: ANN202
        def hook(module, args, output):  # noqa: ANN001, ANN202, ARG001
            self.seconds[name] += time.perf_counter() - self._starts.pop(name)

        return hook

    def reset(self) -> None:
        self.seconds.clear()


def one_round(model: Any, processor: Any, image: Any, timer: ModuleTimer) -> dict[str, float]:
    timer.reset()
    start = time.perf_counter()
    inputs = processor(images=[image])
    prepared = time.perf_counter()
    with torch.inference_mode():
        outputs = model(**inputs)
    forwarded = time.perf_counter()
    processor.post_process_object_detection(outputs, threshold=0.5)
    done = time.perf_counter()
    seconds = timer.seconds
    forward = forwarded - prepared
    return {
        "preprocessing": prepared - start,
        "backbone": seconds["backbone"],
        "fpn": seconds["fpn"],
        "rpn_head": seconds["rpn_head"],
        "rpn_proposals": seconds["rpn"] - seconds["rpn_head"],
        "roi_align": seconds["roi_align"],
        "box_head": seconds["box_head"] + seconds["box_predictor"],
        "detection": seconds["roi_heads"] - seconds["roi_align"] - seconds["box_head"] - seconds["box_predictor"],
        "forward_other": forward - seconds["backbone"] - seconds["fpn"] - seconds["rpn"] - seconds["roi_heads"],
        "post_processing": done - forwarded,
        "total": done - start,
    }


def top_operators(model: Any, processor: Any, image: Any, count: int) -> list[dict[str, Any]]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler, torch.inference_mode():
        outputs = model(**processor(images=[image]))
        processor.post_process_object_detection(outputs, threshold=0.5)
    events = sorted(profiler.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
    total = sum(event.self_cpu_time_total for event in events)
    return [
        {
            "operator": event.key,
            "calls": event.count,
            "self_cpu_ms": round(event.self_cpu_time_total / 1000, 1),
            "share": round(event.self_cpu_time_total / total, 4),
        }
        for event in events[:count]
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--image", default="coffee")
    parser.add_argument("--top", type=int, default=15, help="operators to list")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "faster-rcnn-hub-benchmark"))
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor

    model_dir = seeded_checkpoint_model(Path(args.cache))
    model = FasterRCNNForObjectDetection.from_pretrained(model_dir).eval()
    processor = FasterRCNNImageProcessor.from_pretrained(model_dir)
    image = load_rgb(IMAGES / f"{args.image}.png")
    timer = ModuleTimer(model)
    for _ in range(args.warmup):
        one_round(model, processor, image, timer)
    rounds = [one_round(model, processor, image, timer) for _ in range(args.runs)]
    stages = {name: statistics.median(round_[name] for round_ in rounds) for name in rounds[0]}
    results = {
        "machine": machine_description(torch.device("cpu")),
        "threads": args.threads,
        "image": args.image,
        "rounds": rounds,
        "median_seconds": stages,
        "share_of_total": {name: value / stages["total"] for name, value in stages.items() if name != "total"},
        "top_operators": top_operators(model, processor, image, args.top),
    }
    print(f"{'stage':<18}{'median s':>10}{'share':>8}")
    for name, value in stages.items():
        share = value / stages["total"]
        print(f"{name:<18}{value:>10.3f}{share:>8.1%}")
    print(f"\n{'operator':<44}{'calls':>7}{'self ms':>10}{'share':>8}")
    for entry in results["top_operators"]:
        print(f"{entry['operator'][:43]:<44}{entry['calls']:>7}{entry['self_cpu_ms']:>10.1f}{entry['share']:>8.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
