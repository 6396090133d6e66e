#!/usr/bin/env bash
# The main job on a fresh CPU-only machine (no GPU, no TensorRT, no downloads but the pinned packages):
# synthetic fine-grained set -> FRPT trained on the pretrained EfficientNet-Lite0 -> ONNX (fp32 + fp16 graphs)
# -> engine built with the TensorRT builder present (TensorRT-RTX here) -> held-out folder embedded with
# ONNX Runtime -> parity verified on the reference bundles -> Recall@1 from the written embeddings -> a search
# index over them, queried with gallery images, drawn as a contact sheet (search.png / search.html).
# About 3 minutes on 2 cores after the install. Outputs in $FRPT_DEMO_DIR (default runs/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PATH="$PWD/.venv/bin:$PATH"
RUN="${FRPT_DEMO_DIR:-runs/demo}"
SIZE="${FRPT_DEMO_INPUT_SIZE:-128}"
EPOCHS="${FRPT_DEMO_EPOCHS:-10}"
PER_CLASS="${FRPT_DEMO_PER_CLASS:-12}"   # synthetic training images per class (held-out classes get half)
mkdir -p "$RUN"
step() { printf '\n==> %s\n' "$*" >&2; }
t0=$SECONDS

step "1/7 synthetic fine-grained birds + FRPT training (frozen pretrained EfficientNet-Lite0, ${SIZE}px, ${EPOCHS} epochs)"
frpt-train --synthetic "$RUN/data" --synthetic-per-class "$PER_CLASS" --input-size "$SIZE" --epochs "$EPOCHS" \
    -o "$RUN/frpt.pt" --eval
frpt-eval --ckpt "$RUN/frpt.pt" --data "$RUN/data" --show-warps 6 -o "$RUN/warps.png" >/dev/null

step "2/7 ONNX export, fp32 graph (standard lowering) + reference bundle"
frpt-export onnx --ckpt "$RUN/frpt.pt" -o "$RUN/model.onnx"

step "3/7 ONNX export, fp16 graph; and the plugin lowering (one frpt::InhomogeneousSample node, run here by ORT's Python op)"
frpt-export onnx --ckpt "$RUN/frpt.pt" -o "$RUN/model.fp16.onnx" --precision fp16
frpt-export onnx --ckpt "$RUN/frpt.pt" -o "$RUN/model.plugin.onnx" --lowering plugin

step "4/7 TensorRT engine from the fp16 graph (strongly typed; the builder present: tensorrt or tensorrt_rtx)"
frpt-export trt --onnx "$RUN/model.fp16.onnx" -o "$RUN/model.fp16.plan" --min-batch 1 --opt-batch 16 --max-batch 32

step "5/7 frpt-embed the held-out classes with ONNX Runtime (no torch in that path)"
frpt-embed "$RUN/data/test" --onnx "$RUN/model.onnx" -o "$RUN/embed" --batch-size 16

step "6/7 parity on the reference bundles (fp32: max|d| <= 1e-4; fp16: min cos >= 0.999, top-1 >= 99%)"
frpt-verify "$RUN/model.onnx"
frpt-verify "$RUN/model.fp16.onnx"
frpt-verify "$RUN/model.plugin.onnx"

step "7/7 Recall@K from the written embeddings"
frpt-eval --embeddings "$RUN/embed"

step "+ search: index the held-out embeddings (exact + HNSW), query with gallery images, draw the results"
frpt-index build "$RUN/embed" -o "$RUN/gallery.index"
frpt-index build "$RUN/embed" -o "$RUN/gallery.hnsw.index" --kind hnsw
QUERIES=()
for class_dir in $(ls -d "$RUN"/data/test/*/ | awk 'NR % 6 == 1'); do QUERIES+=("$(ls "$class_dir"* | head -1)"); done
frpt-search "${QUERIES[0]}" --index "$RUN/gallery.index" --onnx "$RUN/model.onnx" -k 3   # rank 1: the image itself
frpt-search "${QUERIES[@]}" --index "$RUN/gallery.index" --onnx "$RUN/model.onnx" -k 8 --exclude-self \
    --sheet "$RUN/search.png" --html "$RUN/search.html" >/dev/null

printf '\ndemo finished in %d s; outputs in %s (DPP picture: %s/warps.png; search results: %s/search.png)\n' \
    "$((SECONDS - t0))" "$RUN" "$RUN" "$RUN" >&2
