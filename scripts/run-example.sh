#!/usr/bin/env bash
# The main job, from a fresh clone: set up .venv, convert the tiny mmdetection fixture checkpoint into a
# Hugging Face model folder, then detect objects in an example image, print them and draw them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup-venv.sh"
cd "$ROOT"
OUT="${1:-outputs}"
faster-rcnn-hub convert tests/fixtures/mmdet/tiny_r50_fpn_coco/tiny_r50_fpn_coco.pth "$OUT/tiny_r50_fpn_coco" --overwrite
faster-rcnn-hub detect tests/fixtures/images/astronaut.png --model "$OUT/tiny_r50_fpn_coco" \
    --threshold 0.6 --output-dir "$OUT" --json "$OUT/astronaut_detections.json" --overwrite
