#!/usr/bin/env bash
# `q3vl prepack` (issue 11): the text decoder stored with the weights ONNX Runtime packs for this
# CPU gives exactly the tokens of text.onnx (an int4 package of make-tiny's small preset, with an
# image), and is loaded only while its stamp matches: changed text weights, a stamp from elsewhere
# or a truncated data file make q3vl load text.onnx again, saying why under --verbose. Refused, with
# nothing written: a package whose prepacked decoder ONNX Runtime gets wrong (its probe logits
# differ: the small preset with int8 compute, in ONNX Runtime 1.29), MoE packages (ONNX Runtime's QMoE crashes on
# file-backed experts), float decoders and folders q3vl did not write. --remove deletes exactly its
# three files; onnxruntime-genai's config still names text.onnx.
set -uo pipefail
q3vl=$1
src=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
build() {  # CHECKPOINT OUT ARGS...
  "$q3vl" build --model "$1" --out "$2" --tokenizer-dir "$src/.deps/tokenizer-qwen3" \
    --video-preprocessor-config "$src/assets/qwen3-vl/video_preprocessor_config.json" --quiet "${@:3}" || fail "building $2"
}
image=$src/assets/demo/sample_448.png
run() {  # PACKAGE OUT_FILE [ARGS...]: greedy run, reply into OUT_FILE, stderr into OUT_FILE.err
  "$q3vl" run --model "$1" --greedy --max-new-tokens 16 --verbose "${@:3}" \
    >"$2" 2>"$2.err" || fail "run on $1: $(cat "$2.err")"
}
prepacked_used() { grep -q "^text decoder: text.prepacked.onnx" "$1.err"; }

"$q3vl" make-tiny --preset small --out "$dir/small" --quiet || fail "make-tiny small"
# ONNX Runtime 1.29 reproduces this shape's decoder from its saved packing with float compute
# (accuracy level 1); the real shapes (2B, 4B) also with int8 compute, the default (README).
build "$dir/small" "$dir/pkg" --precision int4 --accuracy-level 1
run "$dir/pkg" "$dir/plain" --image "$image" --prompt "Describe this image."
grep -q "text.prepacked" "$dir/plain.err" && fail "a package without a prepacked decoder mentions one"
"$q3vl" prepack --model "$dir/pkg" >"$dir/out" 2>&1 || fail "prepack: $(cat "$dir/out")"
for f in text.prepacked.onnx text.prepacked.onnx.data text.prepacked.json; do [ -f "$dir/pkg/$f" ] || fail "prepack wrote no $f"; done
[ -e "$dir/pkg.partial" ] && fail "prepack left its staging folder"
grep -q '"text.onnx"' "$dir/pkg/genai_config.json" || fail "genai_config.json no longer names text.onnx"
run "$dir/pkg" "$dir/packed" --image "$image" --prompt "Describe this image."
prepacked_used "$dir/packed" || fail "the prepacked decoder was not used: $(cat "$dir/packed.err")"
cmp -s "$dir/plain" "$dir/packed" || fail "prepacked decoder: $(cat "$dir/packed") vs text.onnx: $(cat "$dir/plain")"
[ -s "$dir/plain" ] || fail "empty reply"

# Prepacking again replaces the files; the library option's default path (run) keeps using them.
"$q3vl" prepack --model "$dir/pkg" >/dev/null 2>&1 || fail "second prepack"
run "$dir/pkg" "$dir/again" --prompt "Hello"
prepacked_used "$dir/again" || fail "not used after a second prepack"

# A stale or foreign stamp: q3vl falls back to text.onnx, says why, and the reply is unchanged.
cp "$dir/pkg/text.prepacked.json" "$dir/stamp.json"
touch -d "2001-01-01" "$dir/pkg/text.onnx.data"
run "$dir/pkg" "$dir/stale" --image "$image" --prompt "Describe this image."
prepacked_used "$dir/stale" && fail "used after text.onnx.data changed"
grep -q "text.prepacked.onnx ignored: text.onnx changed since" "$dir/stale.err" || fail "no reason given: $(cat "$dir/stale.err")"
cmp -s "$dir/plain" "$dir/stale" || fail "fallback reply differs"
"$q3vl" prepack --model "$dir/pkg" >/dev/null 2>&1 || fail "prepack after the change"
sed 's/"onnxruntime": "[^"]*"/"onnxruntime": "0.0.1"/' "$dir/pkg/text.prepacked.json" >"$dir/other.json"
cp "$dir/other.json" "$dir/pkg/text.prepacked.json"
run "$dir/pkg" "$dir/foreign" --prompt "Hello"
grep -q "ignored: made by ONNX Runtime 0.0.1" "$dir/foreign.err" || fail "other ONNX Runtime: $(cat "$dir/foreign.err")"
sed 's/"model": "[^"]*"/"model": "Another CPU"/' "$dir/stamp.json" >"$dir/pkg/text.prepacked.json"
run "$dir/pkg" "$dir/othercpu" --prompt "Hello"
prepacked_used "$dir/othercpu" && fail "used with another CPU's stamp"
printf '{"format": 5' >"$dir/pkg/text.prepacked.json"
run "$dir/pkg" "$dir/garbled" --prompt "Hello"
grep -q "text.prepacked.onnx ignored" "$dir/garbled.err" || fail "a garbled stamp is not reported: $(cat "$dir/garbled.err")"
printf '{"format": "q3vl-prepacked-text/1", "made_from": 5, "prepacked_data_bytes": "x"}' >"$dir/pkg/text.prepacked.json"
run "$dir/pkg" "$dir/wrongtypes" --prompt "Hello"
grep -q "text.prepacked.onnx ignored" "$dir/wrongtypes.err" || fail "a stamp of wrong types: $(cat "$dir/wrongtypes.err")"
rm "$dir/pkg/text.prepacked.json" && mkdir "$dir/pkg/text.prepacked.json"
run "$dir/pkg" "$dir/stampdir" --prompt "Hello"
grep -q "text.prepacked.onnx ignored" "$dir/stampdir.err" || fail "a folder as the stamp: $(cat "$dir/stampdir.err")"
rmdir "$dir/pkg/text.prepacked.json"
"$q3vl" prepack --model "$dir/pkg" >/dev/null 2>&1 || fail "prepack after the garbled stamp"
truncate -s -4096 "$dir/pkg/text.prepacked.onnx.data"
run "$dir/pkg" "$dir/truncated" --image "$image" --prompt "Describe this image."
grep -q "missing or incomplete" "$dir/truncated.err" || fail "truncated data: $(cat "$dir/truncated.err")"
cmp -s "$dir/plain" "$dir/truncated" || fail "reply after a truncated prepacked file differs"

# --remove never deletes through a link: a data file that links to something precious stays.
echo "precious" >"$dir/precious.txt"
rm "$dir/pkg/text.prepacked.onnx.data" && ln -s "$dir/precious.txt" "$dir/pkg/text.prepacked.onnx.data"
"$q3vl" prepack --model "$dir/pkg" --remove >"$dir/out" 2>&1 || fail "--remove with a linked data file: $(cat "$dir/out")"
[ "$(cat "$dir/precious.txt")" = "precious" ] || fail "--remove went through the link"
[ -L "$dir/pkg/text.prepacked.onnx.data" ] || fail "--remove removed the link it should leave alone"
rm "$dir/pkg/text.prepacked.onnx.data"
"$q3vl" prepack --model "$dir/pkg" >/dev/null 2>&1 || fail "prepack after the linked data file"

# --remove deletes the three files and nothing else.
touch "$dir/pkg/keep.txt"
before=$(ls "$dir/pkg" | grep -v prepacked | sort)
"$q3vl" prepack --model "$dir/pkg" --remove >"$dir/out" 2>&1 || fail "--remove: $(cat "$dir/out")"
ls "$dir/pkg" | grep -q prepacked && fail "--remove left: $(ls "$dir/pkg")"
[ "$(ls "$dir/pkg" | sort)" = "$before" ] || fail "--remove touched other files"
"$q3vl" prepack --model "$dir/pkg" --remove >"$dir/out" 2>&1 || fail "--remove twice"
grep -q "no prepacked text decoder" "$dir/out" || fail "second --remove: $(cat "$dir/out")"

# Refusals, each with a message naming the problem and exit 1.
expect_error() {  # LABEL MESSAGE ARGS...
  "$q3vl" prepack "${@:3}" >"$dir/out" 2>&1
  local code=$?
  [ $code -eq 1 ] || fail "$1: exit $code: $(cat "$dir/out")"
  grep -q -- "$2" "$dir/out" || fail "$1: $(cat "$dir/out")"
}
build "$dir/small" "$dir/fp32"
expect_error "fp32 decoder" "its decoder is float" --model "$dir/fp32"
# With int8 compute (the default) ONNX Runtime 1.29 gets this shape's saved packing wrong: the probe
# must refuse it with nothing written; an ONNX Runtime that gets it right must give the same reply.
build "$dir/small" "$dir/int8compute" --precision int4
run "$dir/int8compute" "$dir/i8-plain" --prompt "Hello"
if "$q3vl" prepack --model "$dir/int8compute" >"$dir/out" 2>&1; then
  run "$dir/int8compute" "$dir/i8-packed" --prompt "Hello"
  prepacked_used "$dir/i8-packed" && cmp -s "$dir/i8-plain" "$dir/i8-packed" || fail "int8 compute: accepted but the reply differs"
else
  grep -q "does not reproduce text.onnx" "$dir/out" || fail "int8 compute refused for another reason: $(cat "$dir/out")"
  ls "$dir/int8compute" | grep -q prepacked && fail "a refused prepack left files"
  [ -e "$dir/int8compute.partial" ] && fail "a refused prepack left its staging folder"
fi
mkdir "$dir/foreign-pkg" && cp -r "$dir/pkg/." "$dir/foreign-pkg/" && rm "$dir/foreign-pkg/.q3vl-owned"
expect_error "no marker" "was not written by q3vl" --model "$dir/foreign-pkg"
ls "$dir/foreign-pkg" | grep -q prepacked && fail "wrote into a folder q3vl did not write"
expect_error "not a package" "nowhere" --model "$dir/nowhere"
ln -s "$dir/pkg" "$dir/link"
expect_error "a link" "link" --model "$dir/link"
ls "$dir/pkg" | grep -q prepacked && fail "wrote through a link"

# A MoE package is refused before anything is written.
"$q3vl" make-tiny --preset moe --out "$dir/moe-ck" --quiet || fail "make-tiny moe"
build "$dir/moe-ck" "$dir/moe" --precision int4
expect_error "MoE" "mixture-of-experts" --model "$dir/moe"
ls "$dir/moe" | grep -q prepacked && fail "a refused MoE prepack left files"
echo "prepack: replies identical with an image; 7 fallbacks and 5 refusals checked, int8 compute verified"
