#!/usr/bin/env bash
# Builds a package of the golden `full` model with `q3vl build` and runs examples/genai on it:
# genai must generate HF's greedy tokens for that case.
set -euo pipefail
q3vl=$1 example=$2 src=$3 tokenizer=$4
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
case_dir=$src/tests/fixtures/golden/cases/full_image_system
"$q3vl" build --model "$src/tests/fixtures/golden/models/full" --out "$dir/pkg" --tokenizer-dir "$tokenizer" 2>/dev/null
prompt=$'<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe this image.<|im_end|>\n<|im_start|>assistant\n'
got=$("$example" "$dir/pkg" "$case_dir/image0.png" "$prompt" 32 2>/dev/null | head -1)
# HF's tokens, read from the fixture's .npy (int64 little-endian after the header).
want=$(od -A n -t d8 -v -j 128 "$case_dir/greedy_tokens.npy" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')
echo "genai: $got"
echo "hf:    $want"
[ "$got" = "$want" ]
