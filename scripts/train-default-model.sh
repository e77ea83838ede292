#!/usr/bin/env bash
# Train the package's default model from scratch on synthetic shapes (about 30 minutes on 2 CPU cores) and install
# it as src/faster_rcnn_hub/assets/default_model/ (model files and model card). Data and checkpoints go to
# outputs/default-model-run/; an interrupted run continues with --resume. Extra arguments go to
# `faster-rcnn-hub train-default` (e.g. --threads 1 on a busy machine).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup-venv.sh"
cd "$ROOT"
faster-rcnn-hub train-default --output-dir src/faster_rcnn_hub/assets/default_model --work-dir outputs/default-model-run \
    --overwrite "$@"
