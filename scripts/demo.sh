#!/usr/bin/env bash
# `make demo`: the main job end to end on a small random-weight model: write a Hugging Face
# checkpoint, export it to an ONNX package, and answer a question about an image, streaming the
# reply. The weights are random, so the reply is gibberish by design; the pipeline is the real one.
set -euo pipefail
q3vl=${1:-build/q3vl}
out=demo-out
mkdir -p "$out"
echo "== 1/3  q3vl make-tiny: a random-weight Qwen3-VL checkpoint (tiny preset, real tokenizer) -> $out/tiny-hf"
"$q3vl" make-tiny --preset tiny --out "$out/tiny-hf" --seed 0 --force --quiet
echo "== 2/3  q3vl build: export to ONNX (vision + embedding + decoder, DeepStack kept) -> $out/tiny-pkg"
"$q3vl" build --model "$out/tiny-hf" --out "$out/tiny-pkg" --force
echo "== 3/3  q3vl run: image + prompt in, streamed text out (gibberish: random weights)"
echo
"$q3vl" run --model "$out/tiny-pkg" --image assets/demo/sample.png --prompt "Describe this image." \
  --max-new-tokens 32 --seed 0 --verbose
