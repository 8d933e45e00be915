#!/usr/bin/env bash
# Real-shape benchmarks on random weights: writes the 2B (and with --4b the 4B) checkpoint with
# `q3vl make-tiny`, exports it (export time and peak RSS), and runs the vision and decoder
# benchmarks at fp32 and int4, then end-to-end `q3vl run`s (load time, vision, prefill, decode, peak
# RSS), and the video decoding benchmark. Needs ~30 GB of disk for both sizes; numbers go to stdout.
# `make bench` runs it.
#   bench/run_benchmarks.sh [--4b] [--work DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${TMPDIR:-/tmp}/q3vl-bench
sizes=(2b)
while [ $# -gt 0 ]; do
  case "$1" in
    --4b) sizes=(2b 4b) ;;
    --work) work=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
q3vl=$here/build/q3vl
bench=$here/build/bench
mkdir -p "$work"

measure() {  # measure LABEL CMD...: wall time and peak RSS of a command
  local label=$1; shift
  /usr/bin/time -f "$label: %e s, peak RSS %M KB" "$@" 2>&1 | grep -E "^$label:|wrote|total|MB|GB" || true
}

for size in "${sizes[@]}"; do
  ckpt=$work/hf-$size
  [ -f "$ckpt/config.json" ] || "$q3vl" make-tiny --preset "$size" --out "$ckpt" --force
  echo "== $size: export"
  measure "export $size fp32" "$q3vl" build --model "$ckpt" --out "$work/pkg-$size-fp32" --force
  measure "export $size int4 + fp32 vision" "$q3vl" build --model "$ckpt" --out "$work/pkg-$size-int4" --precision int4 \
    --vision-precision fp32 --force
  measure "export $size int4 (int8 vision, the default)" "$q3vl" build --model "$ckpt" --out "$work/pkg-$size-int4v8" --precision int4 --force
  echo "== $size: vision (fp32)"
  "$bench/vision_bench" "$work/pkg-$size-fp32" --runs 2
  echo "== $size: vision (int8: vision.kernels.onnx where this CPU has AVX-512 VNNI), speed and error against fp32"
  "$bench/vision_bench" "$work/pkg-$size-int4v8" --runs 2
  "$bench/vision_bench" "$work/pkg-$size-int4v8" --reference "$work/pkg-$size-fp32"
  for precision in int4 fp32; do
    echo "== $size: decoder ($precision)"
    "$bench/decode_bench" "$work/pkg-$size-$precision" --prompt 128 --decode 32
  done
done

# What a user's `q3vl run` sees, process start to exit: "load N ms" is process start until the
# model is ready (the vision encoder loads beside the text models when --image is given).
end_to_end() {  # end_to_end LABEL PACKAGE: text and image prompts, 3 runs each, on a 2B package
  for kind in text image; do
    echo "== end to end: q3vl run, $1, $kind prompt, 32 tokens (3 runs)"
    image_args=()
    [ "$kind" = image ] && image_args=(--image "$here/assets/demo/sample_448.png")
    for run in 1 2 3; do
      /usr/bin/time -f "  process: %e s wall, peak RSS %M KB" "$q3vl" run --model "$2" "${image_args[@]}" \
        --prompt "Describe this image." --max-new-tokens 32 --greedy --verbose --context 1024 2>&1 >/dev/null |
        sed 's/^/  /'
    done
  done
}
end_to_end "2B int4 decoder (text.kernels.onnx) + fp32 vision" "$work/pkg-2b-int4"
end_to_end "2B int4 decoder + int8 vision (vision.kernels.onnx)" "$work/pkg-2b-int4v8"

# q3vl's kernels alone, per instruction set: a 2B layer's shapes (prefill multiply-adds per second,
# decode bytes per second against the read bandwidth), the int8 kernel on a vision MLP matrix, and
# a 30B-A3B MoE layer's experts; the decode attention over a float16 cache of 256-4096 positions.
echo "== int4 kernels"
"$bench/int4_matmul_bench"
"$bench/int4_experts_bench"
echo "== decode attention"
"$bench/decode_attention_bench"

# Video decoding as Qwen3-VL's processor uses it (no model needed): the frames sampled at 2 fps
# from a 60 s 1280x720 30 fps H.264 clip (written once into the work folder), then every frame.
echo "== video decoding: 60 s 720p H.264, 2-fps sample vs every frame"
"$bench/video_decode_bench" --work "$work" --runs 3
