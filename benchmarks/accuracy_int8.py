"""COCO box AP of the bundled default model exported to ONNX, float32 against INT8, on the recipe's held-out split.

    python benchmarks/accuracy_int8.py --json benchmarks/results-int8-accuracy.json

Data, drawn with the default recipe's settings (training/default_recipe.py): the held-out split
(`HELD_OUT_IMAGES` images, seed `HELD_OUT_SEED`) is evaluated; the INT8 model is calibrated on the first 32 images
of the *training* split (seed `TRAIN_SEED`), never on the held-out one. Both exports run on ONNX Runtime through
the torch-free runtime (`OnnxDetector`: its NumPy/OpenCV preprocessing), every detection the graph keeps, scored
as `faster-rcnn-hub evaluate --backend onnxruntime` scores them (`exported_coco_results`, `coco_box_metrics`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from faster_rcnn_hub import export
from faster_rcnn_hub.data.synthetic import write_dataset
from faster_rcnn_hub.evaluation import coco_box_metrics, exported_coco_results
from faster_rcnn_hub.runtime import OnnxDetector
from faster_rcnn_hub.training.data import CocoDetectionDataset
from faster_rcnn_hub.training.default_recipe import HELD_OUT_IMAGES, HELD_OUT_SEED, TRAIN_SEED

CALIBRATION_IMAGES = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    args = parser.parse_args()
    report: dict[str, Any] = {"held_out_images": HELD_OUT_IMAGES, "held_out_seed": HELD_OUT_SEED,
                              "calibration_images": CALIBRATION_IMAGES, "calibration_seed": TRAIN_SEED}  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        held_out = write_dataset(work / "held-out", HELD_OUT_IMAGES, HELD_OUT_SEED)
        training = write_dataset(work / "train", CALIBRATION_IMAGES, TRAIN_SEED)
        exports = {
            "float32": export(None, work / "float32"),
            "int8": export(None, work / "int8", quantize="int8", calibration_images=training / "images"),
        }
        for precision, folder in exports.items():
            detector = OnnxDetector(folder, threads=args.threads)
            names = [detector.id2label[label] for label in range(len(detector.id2label))]
            dataset = CocoDetectionDataset(held_out / "annotations.json", held_out / "images", names)
            start = time.perf_counter()
            # What `faster-rcnn-hub evaluate --backend onnxruntime --model FOLDER` runs.
            results = exported_coco_results(detector, dataset, dataset.label_to_category_id)
            metrics = coco_box_metrics(dataset.coco, results)
            report[precision] = {key: metrics[key] for key in ("AP", "AP50", "AP75")}
            report[precision]["seconds"] = round(time.perf_counter() - start, 1)
            print(precision, report[precision])
    report["AP_drop_points"] = round(100 * (report["float32"]["AP"] - report["int8"]["AP"]), 2)
    print(f"INT8 AP drop: {report['AP_drop_points']} points")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
