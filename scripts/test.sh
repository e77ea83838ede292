#!/usr/bin/env bash
# The test suite, from a fresh clone: set up .venv, then run pytest (extra arguments go to pytest).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup-venv.sh"
bash "$ROOT/scripts/install-chromium.sh"  # Debian's Chromium for the browser tests of the demo
# The transformers releases converted folders must load on as remote code (tests/test_remote_code_versions.py);
# here their test fails rather than skips when one is missing.
bash "$ROOT/scripts/setup-remote-code-envs.sh" python
export FASTER_RCNN_HUB_REQUIRE_REMOTE_CODE_ENVS=1
cd "$ROOT"
python -m pytest "$@"
