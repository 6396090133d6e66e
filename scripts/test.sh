#!/usr/bin/env bash
# The test suite on a fresh machine: installs what it needs (scripts/setup_env.sh), then runs pytest.
# GPU / TensorRT tests skip with their reason where neither is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest -q "$@"
