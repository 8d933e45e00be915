#!/usr/bin/env bash
# `q3vl make-tiny` writes a checkpoint with the real tokenizer that `q3vl inspect` validates.
set -euo pipefail
q3vl=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$q3vl" make-tiny --preset tiny --out "$dir/tiny" --seed 3 --quiet
for f in config.json model.safetensors tokenizer.json tokenizer_config.json chat_template.json \
         preprocessor_config.json video_preprocessor_config.json generation_config.json; do
  [ -s "$dir/tiny/$f" ] || { echo "missing $f"; exit 1; }
done
out=$("$q3vl" inspect --model "$dir/tiny")
echo "$out"
grep -q "all .* expected tensors present" <<<"$out"
grep -q "deepstack after blocks \[1,2,3\]" <<<"$out"
grep -q "experts" <<<"$out" && { echo "a dense checkpoint shown with experts"; exit 1; }
# The MoE preset: its experts (released layout) pass the checks and are described.
"$q3vl" make-tiny --preset moe --out "$dir/moe" --quiet
moe=$("$q3vl" inspect --model "$dir/moe")
grep -q "all .* expected tensors present" <<<"$moe"
grep -q "experts (MoE)   3 of 4 layers sparse: 8 experts, 2 per token, expert mlp 32, dense layers \[2\]" <<<"$moe"
# An existing folder is not overwritten without --force.
if "$q3vl" make-tiny --preset tiny --out "$dir/tiny" --quiet 2>"$dir/err"; then echo "overwrote"; exit 1; fi
grep -q -- "--force" "$dir/err"
"$q3vl" make-tiny --preset tiny --out "$dir/tiny" --seed 4 --force --quiet
echo "ok"
