#!/usr/bin/env bash
# One fast job of the compatibility matrix: install the package with `pip install .` into a virtual environment of
# its own, then run the tests marked `matrix` (parity on the tiny fixtures, the pipeline, remote code without the
# package) against it.
#   lowest: Python 3.10 and the lowest supported versions (constraints/lowest.txt = pyproject's lower bounds)
#   newest: Python 3.13 and the newest versions the package index serves (as far as this machine's pip allows)
# Usage: bash scripts/matrix-job.sh lowest|newest [pytest arguments]
# The wheels are kept in $FASTER_RCNN_HUB_WHEELHOUSE (default ~/.cache/faster-rcnn-hub/wheels), so a rerun
# downloads only what changed (pip's own cache does not keep them on these machines); the environments are
# .venv-lowest and .venv-newest, reused while their inputs are unchanged.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOB="${1:?usage: bash scripts/matrix-job.sh lowest|newest [pytest arguments]}"
shift
case "$JOB" in
    lowest) PYTHON_VERSION=3.10 ;;
    newest) PYTHON_VERSION=3.13 ;;
    *) echo "matrix-job.sh: unknown job '$JOB'; use lowest or newest." >&2; exit 2 ;;
esac
VENV="${FASTER_RCNN_HUB_MATRIX_VENVS:-$ROOT}/.venv-$JOB"
WHEELHOUSE="${FASTER_RCNN_HUB_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/faster-rcnn-hub/wheels}"
mkdir -p "$WHEELHOUSE"

find_python() {  # python3.X on PATH, or pyenv's newest 3.X
    local version="$1" pyenv_version
    if "python$version" -c '' 2>/dev/null; then
        command -v "python$version"
        return
    fi
    pyenv_version="$(pyenv versions --bare 2>/dev/null | grep -E "^${version//./\\.}(\.[0-9]+)?$" | tail -n 1 || true)"
    if [ -n "$pyenv_version" ]; then
        echo "$(pyenv root)/versions/$pyenv_version/bin/python$version"
        return
    fi
    echo "matrix-job.sh: Python $version is needed for the $JOB job and was not found (install it, e.g. with pyenv)." >&2
    exit 1
}
PYTHON="$(find_python "$PYTHON_VERSION")"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import sys; sys.exit(f'{sys.version_info[0]}.{sys.version_info[1]}' != '$PYTHON_VERSION')"; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
PIP=("$VENV/bin/python" -m pip)

if [ "$JOB" = lowest ]; then
    LOWEST="$ROOT/constraints/lowest.txt"
    STAMP="$VENV/.installed-from"
    WANT="$(cat "$ROOT/pyproject.toml" "$LOWEST" | sha256sum | cut -c1-16)"
    if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
        echo "matrix-job.sh: installing the lowest supported versions into $VENV" >&2
        "${PIP[@]}" download --quiet --dest "$WHEELHOUSE" -r "$LOWEST"
        "${PIP[@]}" install --quiet --no-index --find-links "$WHEELHOUSE" -r "$LOWEST"
        # `pip install .` with nothing from the index: the package's ranges must accept exactly these versions.
        "${PIP[@]}" install --quiet --no-index --find-links "$WHEELHOUSE" --no-build-isolation "$ROOT"
        echo "$WANT" > "$STAMP"
    fi
else
    echo "matrix-job.sh: installing the newest versions into $VENV" >&2
    "${PIP[@]}" download --quiet --dest "$WHEELHOUSE" "$ROOT[test]" setuptools
    "${PIP[@]}" install --quiet --upgrade --upgrade-strategy eager --find-links "$WHEELHOUSE" "$ROOT[test]" setuptools
fi
"$VENV/bin/python" -c 'import faster_rcnn_hub, faster_rcnn_hub.models.faster_rcnn.modeling_faster_rcnn'
# The tests need the package as an editable install: the remote-code tests run a Python that must not find it,
# which hides an editable install (a .pth file) but not a regular one.
"${PIP[@]}" install --quiet --no-deps --no-build-isolation -e "$ROOT"
"${PIP[@]}" list --format=freeze 2>/dev/null | grep -iE '^(torch|torchvision|transformers|huggingface.hub|numpy|pillow|opencv-contrib-python-headless|opencv-python-headless|safetensors)==' \
    | tr '\n' ' ' | sed "s/^/matrix-job.sh: $JOB job on Python $PYTHON_VERSION with: /" >&2
echo >&2
cd "$ROOT"
# Only the test files that hold `matrix` tests: the others may import what this job does not install (gradio,
# hypothesis, tomllib on Python 3.10).
mapfile -t TEST_FILES < <(grep -l "mark.matrix" tests/test_*.py)
HF_HUB_OFFLINE=1 "$VENV/bin/python" -m pytest -m matrix -p no:cacheprovider "${TEST_FILES[@]}" "$@"
