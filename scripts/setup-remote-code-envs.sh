#!/usr/bin/env bash
# One folder of packages per transformers release that converted folders must load on as remote code
# (constraints/remote-code/transformers-*.txt), installed with `pip install --target` for the Python of the test
# environment. tests/test_remote_code_versions.py runs that Python with `-S` and only such a folder and the
# environment's site-packages on its path: the folder's transformers (and its huggingface_hub, tokenizers, ...)
# come first, torch comes from the environment, and faster_rcnn_hub (an editable install, found through a .pth
# file that only the site module reads) is not importable. A folder is reused while its file is unchanged.
# Usage: bash scripts/setup-remote-code-envs.sh [PYTHON]   (default: python on PATH)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${1:-python}"
ENVS="${FASTER_RCNN_HUB_REMOTE_CODE_ENVS:-$ROOT/.venv-remote-code}"
mkdir -p "$ENVS"
for requirements in "$ROOT"/constraints/remote-code/*.txt; do
    name="$(basename "$requirements" .txt)"
    target="$ENVS/$name"
    stamp="$target/.installed-from"
    want="$(sha256sum "$requirements" | cut -c1-16)"
    if [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
        continue
    fi
    echo "Installing $name into $target" >&2
    rm -rf "$target"
    # --no-deps: the file lists every package the release needs, at exact versions; --no-compile: Python compiles
    # what it imports on first use, a small part of transformers.
    "$PYTHON" -m pip install --quiet --no-compile --no-deps --target "$target" -r "$requirements"
    echo "$want" > "$stamp"
done
