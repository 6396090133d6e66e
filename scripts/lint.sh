#!/usr/bin/env bash
# Static checks the test command runs first: formatting and lint (ruff), the one-way layers (import-linter),
# and the C++/CUDA formatting of plugins/ (clang-format). Uses the project's .venv (scripts/setup_env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
"$bin/ruff" format --check --quiet .
"$bin/ruff" check --quiet .
PYTHONPATH="$PWD:$PWD/export:$PWD/runtime" "$bin/lint-imports" --no-cache >/dev/null  # this checkout, not the venv's
git ls-files -- 'plugins/*.h' 'plugins/*.cpp' 'plugins/*.cu' | xargs "$bin/clang-format" --dry-run -Werror
echo "lint: ruff, import-linter, clang-format passed" >&2
