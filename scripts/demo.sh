#!/usr/bin/env bash
# `make demo`: the main job end to end on a small random-weight model. Its text would be
# gibberish: the weights are random. Runs as far as the code goes and says what is missing.
set -euo pipefail
q3vl=${1:-build/q3vl}
out=demo-out
mkdir -p "$out"
echo "== 1. a random-weight Qwen3-VL checkpoint (tiny preset, real tokenizer) -> $out/tiny-hf"
"$q3vl" make-tiny --preset tiny --out "$out/tiny-hf" --seed 0 --force
echo
echo "== 2. validate it the way an export starts: every tensor, dtype and shape"
"$q3vl" inspect --model "$out/tiny-hf"
echo
echo "== 3. export to ONNX and run: not built yet."
echo "   q3vl build (vision/text export) and q3vl run (image + prompt -> streamed text) come with"
echo "   the export and runtime issues; this demo will run them once they exist."
