#!/usr/bin/env bash
# On a machine with a CUDA GPU, in one command: the CUDA parity tests (tests/test_cuda.py: detections against
# mmdetection's fixtures with PyTorch's default TF32 switches on, TF32 when asked for), the device-portability
# tests, and the CUDA inference benchmark (float32, TF32, float16, bfloat16 and torchvision); then one summary.
# Output goes to OUTPUT_DIR (default outputs/gpu-check): pytest's log, the benchmark's JSON and log, summary.txt.
# The virtual environment is scripts/setup-venv.sh's (set FASTER_RCNN_HUB_VENV to reuse one).
# Usage: bash scripts/gpu-check.sh [OUTPUT_DIR]
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/outputs/gpu-check}"
mkdir -p "$OUT"
source "$ROOT/scripts/setup-venv.sh" || exit 1
cd "$ROOT"
if ! python -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "gpu-check.sh: torch sees no CUDA GPU here ($(python -c 'import torch; print(torch.__version__)')); nothing to check." >&2
    exit 2
fi
python -c 'import torch; print(f"GPU: {torch.cuda.get_device_name()} (capability {torch.cuda.get_device_capability()}), torch {torch.__version__}, CUDA {torch.version.cuda}")' \
    | tee "$OUT/summary.txt"

python -m pytest tests/test_cuda.py tests/test_device_portability.py -q -p no:cacheprovider -rs > "$OUT/pytest.log" 2>&1
tests_status=$?
echo "tests: $(tail -n 1 "$OUT/pytest.log") (exit $tests_status; log $OUT/pytest.log)" | tee -a "$OUT/summary.txt"
if grep -q "test_cuda.py.*SKIPPED\|SKIPPED.*test_cuda" "$OUT/pytest.log"; then
    echo "tests: the CUDA tests were skipped (see the log): this is not a pass" | tee -a "$OUT/summary.txt"
    tests_status=1
fi

python benchmarks/benchmark_inference.py --device cuda --dtypes float32,tf32,float16,bfloat16 --others torchvision \
    --runs 10 --warmup 3 --skip-memory --json "$OUT/benchmark.json" > "$OUT/benchmark.log" 2>&1
bench_status=$?
if [ "$bench_status" = 0 ]; then
    python - "$OUT/benchmark.json" <<'PYTHON' | tee -a "$OUT/summary.txt"
import json, sys
report = json.load(open(sys.argv[1]))
latency = report["latency_s"]
reference = latency.get("torchvision")
for name, seconds in sorted(latency.items(), key=lambda item: item[1]):
    ratio = f", {reference / seconds:.2f}x torchvision's speed" if reference else ""
    print(f"benchmark: {name:24s} {seconds * 1000:8.1f} ms per image{ratio}")
for name, kept in report.get("kept_float32_detections", {}).items():
    print(f"benchmark: {name} keeps {kept['kept']} of {kept['of']} float32 detections ({kept['rule']})")
print("benchmark: torchvision runs under PyTorch's default switches (TF32 convolutions on Ampere and later)")
PYTHON
else
    echo "benchmark: failed (exit $bench_status); see $OUT/benchmark.log" | tee -a "$OUT/summary.txt"
fi
if [ "$tests_status" = 0 ] && [ "$bench_status" = 0 ]; then
    echo "gpu-check: passed" | tee -a "$OUT/summary.txt"
    exit 0
fi
echo "gpu-check: FAILED" | tee -a "$OUT/summary.txt"
exit 1
