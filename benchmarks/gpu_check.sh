#!/usr/bin/env bash
# Check the GPU paths on a machine with CUDA, in about 5 minutes: the estimator and defence tests on device_type
# "gpu" (they skip without CUDA, so CPU-only CI never runs them), then one PGD cell per kind of system through the
# runner (benchmarks/gpu_check.yaml). Run from the repository root, with the package's test dependencies installed:
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # default: runs/gpu_check
# It fails if CUDA is absent, if any selected test fails or is skipped, or if any cell fails.
set -euo pipefail
out=${1:-runs/gpu_check}
export PYTHONUNBUFFERED=1
python - <<'PY'
import sys
import torch

if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device here; nothing to check")
print(f"gpu_check: torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
PY
mkdir -p "$out"
# Only the cases parametrised on the GPU (their ids end in [gpu] or [gpu-...]); a skip would mean no CUDA after all.
python -m pytest -q -p no:cacheprovider -rs tests/estimators tests/defences -k "gpu" 2>&1 | tee "$out/pytest.log"
if grep -q "skipped" "$out/pytest.log"; then
    echo "gpu_check: some GPU tests were skipped (see $out/pytest.log)" >&2
    exit 1
fi
rm -rf "$out/run"
python -m art_asr_ext.benchmark --config benchmarks/gpu_check.yaml --out "$out/run" --no-progress --no-plot
echo "gpu_check: passed; table in $out/run/table1.md"
