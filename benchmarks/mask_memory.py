"""What a Mask R-CNN's masks cost `Detector` on a large photo: the bytes held per image as box windows
(`InstanceMask`) against full-size binary maps (`post_process_instance_segmentation(return_binary_maps=True)`),
and the time of each way of pasting, measured side by side in one run on the same model outputs.

    python benchmarks/mask_memory.py --json benchmarks/results-mask-memory.json

The model is a seeded, randomly initialised Mask R-CNN (ResNet-50 FPN, 80 classes, mmdetection's mask head) with
a box score threshold of 0, so that it keeps its cap of 100 detections: they are arbitrary, their boxes are what
its RPN proposes. The image is 4000 x 3000 seeded noise.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from faster_rcnn_hub import FasterRCNNConfig, FasterRCNNForObjectDetection, FasterRCNNImageProcessor
from faster_rcnn_hub.detection import Detector
from faster_rcnn_hub.detection.instance_mask import instance_masks

IMAGE_SIZE = (3000, 4000)  # height, width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    torch.manual_seed(0)
    image = np.random.default_rng(0).integers(0, 256, size=(*IMAGE_SIZE, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        config = FasterRCNNConfig(mask_head={}, num_classes=80, rcnn_score_threshold=0.0)
        FasterRCNNForObjectDetection(config).save_pretrained(folder)
        FasterRCNNImageProcessor().save_pretrained(folder)
        detector = Detector(Path(folder), device="cpu")
        inputs = detector.processor(images=[image])
        with torch.no_grad():
            outputs = detector.model(**inputs)
    start = time.perf_counter()
    # What Detector does for each image (detector.py): paste at the unclamped boxes, keep each window.
    count = int(outputs["num_detections"][0])
    image_size = tuple(int(value) for value in outputs["original_sizes"][0].tolist())
    windows = instance_masks(outputs["pred_masks"][0, :count], outputs["pred_boxes"][0, :count], image_size)
    window_seconds = time.perf_counter() - start
    start = time.perf_counter()
    full = detector.processor.post_process_instance_segmentation(outputs, threshold=0.0, return_binary_maps=True)[0]
    full_seconds = time.perf_counter() - start
    start = time.perf_counter()
    rles = [mask.to_rle() for mask in windows]
    rle_seconds = time.perf_counter() - start
    same = all(np.array_equal(mask.to_array(), binary.numpy()) for mask, binary in zip(windows, full["segmentation"]))
    results = {
        "image": f"{IMAGE_SIZE[1]}x{IMAGE_SIZE[0]}",
        "detections": len(windows),
        "window_bytes": int(sum(mask.window.nbytes for mask in windows)),
        "full_size_bytes": int(full["segmentation"].numel() * full["segmentation"].element_size()),
        "window_paste_s": round(window_seconds, 3),
        "full_size_paste_s": round(full_seconds, 3),
        "rle_from_windows_s": round(rle_seconds, 3),
        "rle_bytes": int(sum(len(rle["counts"]) for rle in rles)),
        "masks_equal": same,
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
