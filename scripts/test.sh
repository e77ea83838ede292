#!/usr/bin/env bash
# The test suite, from a fresh clone: set up .venv, then run pytest (extra arguments go to pytest).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup-venv.sh"
bash "$ROOT/scripts/install-chromium.sh"  # Debian's Chromium for the browser tests of the demo
cd "$ROOT"
python -m pytest "$@"
