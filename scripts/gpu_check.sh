#!/usr/bin/env bash
# The one command for a machine with a CUDA GPU: sets up what it needs, builds the plugin where TensorRT headers are
# found, runs every GPU test and the GPU benchmark rows, and writes one report (gpu_check.md + gpu_check.json) into
# $FRPT_GPU_CHECK_OUT, else $OUT, else runs/gpu_check. Without a CUDA GPU it says "no CUDA GPU", writes the report
# and exits 0. The steps, their time limits and the setup order are in scripts/gpu_check.py's docstring.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then
    PYTHON=.venv/bin/python
else
    PYTHON="$(command -v python3 || command -v python)"
fi
exec "$PYTHON" scripts/gpu_check.py "$@"
