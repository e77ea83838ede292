#!/usr/bin/env bash
# The main job, from a fresh clone: set up .venv, then detect objects in an example image with the model bundled in
# the package (a small Faster R-CNN trained here on synthetic shapes), print them and draw them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup-venv.sh"
cd "$ROOT"
OUT="${1:-outputs}"
faster-rcnn-hub detect src/faster_rcnn_hub/assets/shapes_example.png \
    --threshold 0.5 --output-dir "$OUT" --json "$OUT/shapes_example_detections.json" --overwrite
