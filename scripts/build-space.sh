#!/usr/bin/env bash
# Assemble the Hugging Face Space of the demo in OUTPUT_DIR: demo/app.py, demo/README.md (the Space card),
# demo/requirements.txt and a copy of the faster_rcnn_hub package (with its example images and, once it exists,
# its bundled default model), so that the Space's `python app.py` imports the package from beside itself.
# Upload it with: hf upload USER/SPACE OUTPUT_DIR . --repo-type space
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:?usage: bash scripts/build-space.sh OUTPUT_DIR}"
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
    echo "build-space.sh: $OUT exists and is not empty; choose a new folder." >&2
    exit 1
fi
mkdir -p "$OUT"
cp "$ROOT/demo/app.py" "$ROOT/demo/README.md" "$ROOT/demo/requirements.txt" "$OUT/"
cp -r "$ROOT/src/faster_rcnn_hub" "$OUT/faster_rcnn_hub"
find "$OUT/faster_rcnn_hub" -name __pycache__ -type d -prune -exec rm -rf {} +
echo "Space written to $OUT"
