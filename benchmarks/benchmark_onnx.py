"""The exported model on ONNX Runtime and OpenVINO against this package's PyTorch path and torchvision, in one run,
and their detections against the PyTorch model's on the full-size R50-FPN.

    python benchmarks/benchmark_onnx.py --json benchmarks/results-onnx-cpu.json

Model: the fixtures' seeded full-size `r50_fpn_1x_coco` checkpoint, converted, then exported with
`faster_rcnn_hub.export` (opset 17, and `--format openvino`). Contenders, timed alternately round by round
(median of `--runs` rounds after `--warmup`), each from a decoded RGB array to final detections:

- `ours-float32`: `FasterRCNNForObjectDetection` on its fused path (the default), processor and post-processing.
- `onnxruntime-float32`: `OnnxDetector` (the torch-free runtime): NumPy/OpenCV preprocessing and the exported graph
  on ONNX Runtime's CPU provider, default session options.
- `openvino-float32`: `OpenVinoDetector`: the same preprocessing and the OpenVINO IR on OpenVINO's CPU device
  (float32 weights, `INFERENCE_PRECISION_HINT=f32`).
- `onnxruntime-int8`: `OnnxDetector` on the `--quantize int8` export: the backbone, FPN and RPN convolutions INT8
  (QDQ, per-channel weights), RoiAlign, box head and NMS float32; calibrated on the fixture images other than the
  timed `coffee.png` (and the 16x16 `tiny_noise.png`). Its parity is reported too, but this seeded checkpoint has
  random weights: the INT8 accuracy figure is `accuracy_int8.py`'s AP on the trained default model.
- `torchvision`: `fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)`.

Parity: on each fixture image, each runtime's detections against the PyTorch model's by the fixtures' rule
(tests/parity.py), and the largest box and score differences.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from benchmark_inference import (
    IMAGES,
    ROOT,
    Contender,
    Ours,
    TorchVision,
    alternate,
    conv_throughput,
    forward_flops,
    load_rgb,
    machine_description,
    seeded_checkpoint_model,
)

sys.path.insert(0, str(ROOT / "tests"))
from parity import compare_detections  # noqa: E402

# INT8 calibration: the fixture images that are neither timed (coffee.png) nor tiny (tiny_noise.png, 16x16).
CALIBRATION_IMAGES = ("astronaut", "camera", "chelsea", "wide_pattern")


class Exported(Contender):
    """An export folder run by its runtime (`open_exported`)."""

    def __init__(self, export_dir: Path, name: str) -> None:
        from faster_rcnn_hub.runtime import open_exported

        self.name = name
        self.detector = open_exported(export_dir)

    def detect(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return [self.detector.run(self.detector.preprocessor(image)) for image in images]


def parity(ours: Ours, runtime: Exported) -> dict[str, Any]:
    results = {}
    for path in sorted(IMAGES.glob("*.png")):
        image = load_rgb(path)
        with torch.inference_mode():
            outputs = ours.model(**ours.processor(images=[image]))
        count = int(outputs.num_detections[0])
        boxes, scores, labels = runtime.detect([image])[0]
        comparison = compare_detections(
            outputs.pred_boxes[0, :count], outputs.scores[0, :count].tolist(), outputs.labels[0, :count].tolist(),
            boxes, scores.tolist(), labels.tolist(),
        )  # fmt: skip
        results[path.stem] = {**vars(comparison), "passes": comparison.passes}
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)

    cache = Path(args.cache)
    model_dir = seeded_checkpoint_model(cache)
    exports = Path(tempfile.mkdtemp(dir=cache))
    try:
        return measure(args, model_dir, exports)
    finally:
        shutil.rmtree(exports)  # about 400 MB of exported models


def measure(args: argparse.Namespace, model_dir: Path, exports: Path) -> dict[str, Any]:
    from faster_rcnn_hub import export

    export_seconds = {}
    for export_format in ("onnx", "openvino"):
        start = time.perf_counter()
        export(model_dir, exports / export_format, format=export_format)
        export_seconds[export_format] = time.perf_counter() - start
    calibration = exports / "calibration"
    calibration.mkdir()
    for name in CALIBRATION_IMAGES:
        shutil.copy(IMAGES / f"{name}.png", calibration)
    start = time.perf_counter()
    export(model_dir, exports / "onnx-int8", quantize="int8", calibration_images=calibration)
    export_seconds["onnx-int8"] = time.perf_counter() - start
    device = torch.device("cpu")
    ours = Ours(model_dir, "float32", device)
    runtimes = [
        Exported(exports / "onnx", "onnxruntime-float32"),
        Exported(exports / "openvino", "openvino-float32"),
        Exported(exports / "onnx-int8", "onnxruntime-int8"),
    ]
    contenders: list[Contender] = [ours, *runtimes, TorchVision(device)]
    image = load_rgb(IMAGES / "coffee.png")
    latency = alternate(contenders, lambda contender: contender.detect([image]), args.runs, args.warmup, device)
    flops = forward_flops(ours, image)
    peak = conv_throughput(device, torch.float32)
    report = {
        "machine": machine_description(device),
        "export_seconds": export_seconds,
        "onnx_megabytes": (exports / "onnx" / "model.onnx").stat().st_size / 2**20,
        "onnx_int8_megabytes": (exports / "onnx-int8" / "model.onnx").stat().st_size / 2**20,
        "latency_seconds": latency,
        "forward_gflop": flops / 1e9,
        "conv_peak_gflops": peak,
        "share_of_conv_peak": {name: flops / 1e9 / seconds / peak for name, seconds in latency.items()},
        "vs_torchvision": {name: latency["torchvision"] / seconds for name, seconds in latency.items()},
        "parity": {runtime.name: parity(ours, runtime) for runtime in runtimes},
        "settings": {"runs": args.runs, "warmup": args.warmup, "threads": torch.get_num_threads()},
    }
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "faster-rcnn-hub-benchmark"))
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
