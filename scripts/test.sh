#!/usr/bin/env bash
# The test suite on a fresh machine: installs what it needs (scripts/setup_env.sh), runs the static checks
# (scripts/lint.sh: ruff, import-linter, clang-format), then pytest. GPU / TensorRT tests skip with their reason.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
bash scripts/lint.sh
exec .venv/bin/python -m pytest -q "$@"
