#!/usr/bin/env bash
# `make demo`: the main job end to end on a small random-weight model: write a Hugging Face
# checkpoint, export it to an ONNX package, answer a question about an image, streaming the reply,
# then chat: an image turn, and a video turn about a short clip the demo writes. The weights are
# random, so the replies are gibberish by design; the pipeline is the real one.
set -euo pipefail
q3vl=${1:-build/q3vl}
clip_writer=$(dirname "$q3vl")/tools/clip_writer/make_test_clip
out=demo-out
mkdir -p "$out"
echo "== 1/5  q3vl make-tiny: a random-weight Qwen3-VL checkpoint (tiny preset, real tokenizer) -> $out/tiny-hf"
"$q3vl" make-tiny --preset tiny --out "$out/tiny-hf" --seed 0 --force --quiet
echo "== 2/5  q3vl build: export to ONNX (vision + embedding + decoder, DeepStack kept) -> $out/tiny-pkg"
"$q3vl" build --model "$out/tiny-hf" --out "$out/tiny-pkg" --force
echo "== 3/5  q3vl run: image + prompt in, streamed text out (gibberish: random weights)"
echo
"$q3vl" run --model "$out/tiny-pkg" --image assets/demo/sample.png --prompt "Describe this image." \
  --max-new-tokens 32 --seed 0 --verbose
echo
echo "== 4/5  a 3-second H.264 clip (moving test pattern, 10 fps) -> $out/clip.mp4"
"$clip_writer" "$out/clip.mp4" --codec h264 --frames 30 --fps 10 --size 160x96
echo "== 5/5  q3vl chat: an image turn, then a video turn (HF's sampling: 6 frames, 3 frame pairs with timestamps)"
echo
printf '/image assets/demo/sample.png\nDescribe this image.\n/video %s\nWhat happens in this video?\n' "$out/clip.mp4" |
  "$q3vl" chat --model "$out/tiny-pkg" --max-new-tokens 24 --seed 0 --verbose
