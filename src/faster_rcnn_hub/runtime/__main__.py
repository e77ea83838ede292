"""`python -m faster_rcnn_hub.runtime EXPORT_DIR IMAGE...`: detections of an exported model, without PyTorch.

For machines with only onnxruntime (or openvino), NumPy, Pillow and OpenCV: prints one JSON object mapping each image to
`{"width", "height", "detections"}`, the format of `faster-rcnn-hub detect --json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ..errors import FasterRCNNHubError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m faster_rcnn_hub.runtime",
        description="Detect objects with an exported model (faster-rcnn-hub export) using ONNX Runtime or OpenVINO "
        "(by the export's format), no PyTorch.",
    )
    parser.add_argument("model", help="export folder (faster-rcnn-hub export MODEL OUTPUT_DIR --format onnx|openvino)")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--threshold", type=float, default=0.5, help="minimum score to report (default 0.5)")
    args = parser.parse_args(argv)
    try:
        if not 0.0 <= args.threshold <= 1.0:
            raise FasterRCNNHubError(f"--threshold must lie in [0, 1], got {args.threshold}.")
        from .backends import open_exported
        from .preprocessing import to_rgb_uint8

        detector = open_exported(args.model)
        arrays = [to_rgb_uint8(path) for path in args.images]
        # Grouped by padded size: a batched export (--batch N|dynamic) runs each group in as few calls as it can.
        detections = detector.detect_batch(arrays, threshold=args.threshold)
        report = {
            path: {"width": int(array.shape[1]), "height": int(array.shape[0]), "detections": found}
            for path, array, found in zip(args.images, arrays, detections)
        }
    except FasterRCNNHubError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
