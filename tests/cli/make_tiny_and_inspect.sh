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
# An existing folder is not overwritten without --force.
if "$q3vl" make-tiny --preset tiny --out "$dir/tiny" --quiet 2>"$dir/err"; then echo "overwrote"; exit 1; fi
grep -q -- "--force" "$dir/err"
"$q3vl" make-tiny --preset tiny --out "$dir/tiny" --seed 4 --force --quiet
echo "ok"
