#!/usr/bin/env bash
# Create .venv (Python 3.11) with the exact versions of constraints/locked.txt, or reuse it when neither that file
# nor pyproject.toml has changed. Sourced by the other scripts; safe to run on its own.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FASTER_RCNN_HUB_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
LOCK="$ROOT/constraints/locked.txt"

# The lock is made for Python 3.11 (the torch wheels on this project's machines' disk); the package itself supports
# 3.10 and later (see the compatibility matrix in README.md).
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "scripts/setup-venv.sh installs the locked versions for Python 3.11; $PYTHON is $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating virtual environment in $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.faster-rcnn-hub-installed"
WANT="$(cat "$ROOT/pyproject.toml" "$LOCK" | sha256sum | cut -c1-16)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
    echo "Installing the locked dependencies into $VENV (first run takes a few minutes)" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # torch/torchvision first and on their own: pip finds these exact releases on the local disk.
    "$VENV/bin/python" -m pip install --quiet --constraint "$LOCK" torch torchvision
    "$VENV/bin/python" -m pip install --quiet --constraint "$LOCK" -e "$ROOT[dev]"
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
