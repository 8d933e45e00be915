#!/usr/bin/env bash
# Hostile files in a checkpoint or a package: each case corrupts one thing in a `make-tiny`
# checkpoint (or a package built from it) and expects exit code 1, a message naming the file and the
# field, and for `build` that no OUT (or OUT.partial) folder exists afterwards. Memory is capped so
# a config that makes q3vl allocate in proportion to a declared size fails the case.
set -uo pipefail
q3vl=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
memory_kb=3000000  # a tiny checkpoint needs far less; a billion layers needed ~15 GB
if ! (ulimit -v $memory_kb; "$q3vl" --help) >/dev/null 2>&1; then
  echo "note: q3vl does not start under a memory cap (a sanitizer build reserves shadow memory): no cap"
  memory_kb=unlimited
fi

"$q3vl" make-tiny --preset tiny --out "$dir/base" --quiet || fail "make-tiny"

# set_json FILE KEY VALUE: the first `"KEY": value` (a scalar or a flat array) in FILE, which is
# indented JSON with one key per line.
set_json() { perl -0777 -pi -e "s/\"$2\": (?:\[[^]]*\]|[^,\n]*)/\"$2\": $3/" "$1"; }

# expect_failure LABEL NEEDLE... -- COMMAND...: exit code 1 and every needle in stderr.
expect_failure() {
  local label=$1; shift
  local needles=()
  while [ "$1" != "--" ]; do needles+=("$1"); shift; done
  shift
  (ulimit -v $memory_kb; timeout 120 "$@") >"$dir/stdout" 2>"$dir/stderr"
  local rc=$?
  [ "$rc" = 1 ] || fail "$label: $* exited $rc, expected 1: $(head -c 600 "$dir/stderr")"
  local needle
  for needle in "${needles[@]}"; do
    grep -qF -- "$needle" "$dir/stderr" || fail "$label: stderr does not name '$needle': $(head -c 600 "$dir/stderr")"
  done
  grep -q "unexpected error" "$dir/stderr" && fail "$label: $(cat "$dir/stderr")"
  return 0
}

checkpoint_cases=0
# checkpoint_case LABEL 'EDIT (run in the checkpoint copy)' NEEDLE...: inspect and build both refuse.
checkpoint_case() {
  local label=$1 edit=$2; shift 2
  rm -rf "$dir/ck" "$dir/out" "$dir/out.partial"
  cp -r "$dir/base" "$dir/ck"
  (cd "$dir/ck" && eval "$edit") || fail "$label: edit failed"
  expect_failure "$label (inspect)" "$@" -- "$q3vl" inspect --model "$dir/ck"
  expect_failure "$label (build)" "$@" -- "$q3vl" build --model "$dir/ck" --out "$dir/out"
  [ ! -e "$dir/out" ] || fail "$label: build left $dir/out"
  [ ! -e "$dir/out.partial" ] || fail "$label: build left $dir/out.partial"
  checkpoint_cases=$((checkpoint_cases + 1))
}

deep_json() { perl -e 'print "{\"a\": " . ("[" x 200000) . ("]" x 200000) . "}"'; }

# Sizes a config declares are checked against the files before anything is allocated for them.
checkpoint_case "billion layers" 'set_json config.json num_hidden_layers 1000000000' \
  "config.json" "text_config.num_hidden_layers = 1000000000"
checkpoint_case "billion vision blocks" 'set_json config.json depth 1000000000' "config.json" "vision_config.depth = 1000000000"
checkpoint_case "huge vocabulary" 'set_json config.json vocab_size 1000000000000000' \
  "config.json" 'field "text_config.vocab_size": 1000000000000000 is implausibly large'
checkpoint_case "huge hidden size" 'set_json config.json hidden_size 2000000000' "config.json" "text_config.hidden_size"
checkpoint_case "negative heads" 'set_json config.json num_attention_heads -4' \
  "config.json" 'field "text_config.num_attention_heads": must be a positive integer'
checkpoint_case "kv heads not dividing" 'set_json config.json num_key_value_heads 3' "config.json" "num_key_value_heads (3)"
checkpoint_case "odd head_dim" 'set_json config.json head_dim 33' "config.json" "head_dim (33) must be even"
checkpoint_case "string size" 'set_json config.json intermediate_size "\"128\""' \
  "config.json" 'field "text_config.intermediate_size": expected an integer, got string'
# Float fields that make every logit NaN.
checkpoint_case "rope_theta 0" 'set_json config.json rope_theta 0' "config.json" 'field "text_config.rope_theta": must be a positive number'
checkpoint_case "rope_theta negative" 'set_json config.json rope_theta -5000000.0' "config.json" 'field "text_config.rope_theta"'
checkpoint_case "rope_theta underflows float32" 'set_json config.json rope_theta 1e-60' "config.json" 'field "text_config.rope_theta"'
checkpoint_case "rms_norm_eps 0" 'set_json config.json rms_norm_eps 0' "config.json" 'field "text_config.rms_norm_eps"'
checkpoint_case "rms_norm_eps negative" 'set_json config.json rms_norm_eps -1e-06' "config.json" 'field "text_config.rms_norm_eps"'
# Consistency.
checkpoint_case "deepstack index past depth" 'perl -0777 -pi -e "s/\"deepstack_visual_indexes\": \[[^]]*\]/\"deepstack_visual_indexes\": [1, 2, 9]/" config.json' \
  "config.json" "deepstack_visual_indexes entry 9"
checkpoint_case "image token outside vocab" 'set_json config.json image_token_id 999999' "config.json" "image_token_id 999999"
checkpoint_case "mrope_section too short" 'perl -0777 -pi -e "s/\"mrope_section\": \[[^]]*\]/\"mrope_section\": [6]/" config.json' \
  "config.json" 'field "text_config.rope_scaling.mrope_section": needs 3 entries'
checkpoint_case "deeply nested config" 'deep_json > config.json' "config.json" "nested deeper than 64"
checkpoint_case "config not an object" 'echo "[]" > config.json' "config.json" "expected an object, got array"
# safetensors header.
checkpoint_case "dtype as a number" 'perl -0777 -pi -e "s/\"dtype\":\"BF16\"/\"dtype\":1234.0/" model.safetensors' \
  "model.safetensors" "dtype must be a string, got number"
# Tokenizer files: loaded with q3vl's tokenizer, special tokens checked against config.json.
checkpoint_case "empty tokenizer" ': > tokenizer.json' "tokenizer.json" "not valid JSON"
checkpoint_case "tokenizer {}" 'echo "{}" > tokenizer.json' "tokenizer.json" '"model"'
checkpoint_case "truncated tokenizer" 'head -c 300000 ../base/tokenizer.json > tokenizer.json' "tokenizer.json" "not valid JSON"
checkpoint_case "no added tokens" 'perl -0777 -pi -e "s/\"added_tokens\": \[.*?\n  \],/\"added_tokens\": [],/s" tokenizer.json' \
  "tokenizer.json" "<|image_pad|>" "image_token_id"
checkpoint_case "vision_end renamed" 'perl -pi -e "s/\"<\|vision_end\|>\"/\"<|vision_stop|>\"/" tokenizer.json' \
  "tokenizer.json" "<|vision_end|>" "vision_end_token_id"
checkpoint_case "tokenizer_config not an object" 'echo "[1]" > tokenizer_config.json' "tokenizer_config.json" "expected an object"
checkpoint_case "tokenizer_config eos unknown" 'set_json tokenizer_config.json eos_token "\"<|nope|>\""' \
  "tokenizer_config.json" 'field "eos_token"'
checkpoint_case "tokenizer_config missing" 'rm tokenizer_config.json' "tokenizer_config.json is missing"
checkpoint_case "chat template without images" 'echo "{\"chat_template\": \"{{ messages }}\"}" > chat_template.json' \
  "chat_template.json" "<|image_pad|>"
checkpoint_case "chat template not a string" 'echo "{\"chat_template\": 5}" > chat_template.json' "chat_template.json" "chat_template"
# Generation and preprocessor configs (found only after a full export before).
checkpoint_case "eos outside vocab" 'set_json generation_config.json eos_token_id 999999' \
  "generation_config.json" 'field "eos_token_id"' "outside the vocabulary"
checkpoint_case "top_p as a string" 'set_json generation_config.json top_p "\"high\""' \
  "generation_config.json" 'field "top_p": expected a number, got string'
checkpoint_case "temperature 0 with sampling" 'set_json generation_config.json temperature 0' \
  "generation_config.json" 'field "temperature"'
checkpoint_case "deeply nested generation config" 'deep_json > generation_config.json' "generation_config.json" "nested deeper"
checkpoint_case "preprocessor size as a string" 'set_json preprocessor_config.json longest_edge "\"big\""' \
  "preprocessor_config.json" 'field "size.longest_edge": expected an integer'
checkpoint_case "preprocessor patch size differs" 'set_json preprocessor_config.json patch_size 14' \
  "preprocessor_config.json" 'field "patch_size": 14 differs from config.json vision_config.patch_size'
checkpoint_case "preprocessor std 0" 'perl -0777 -pi -e "s/\"image_std\": \[[^]]*\]/\"image_std\": [0.5, 0, 0.5]/" preprocessor_config.json' \
  "preprocessor_config.json" 'field "image_std"'
# Files that are FIFOs would block a read forever.
checkpoint_case "weights are a FIFO" 'rm model.safetensors && mkfifo model.safetensors' "model.safetensors" "not a regular file"
checkpoint_case "tokenizer is a FIFO" 'rm tokenizer.json && mkfifo tokenizer.json' "tokenizer.json" "not a regular file"
checkpoint_case "generation config is a FIFO" 'rm generation_config.json && mkfifo generation_config.json' \
  "generation_config.json" "not a file"
[ "$checkpoint_cases" = 39 ] || fail "ran $checkpoint_cases checkpoint cases, expected 39"

# Packages: q3vl_package.json fields (read by run/chat), and --only from another model.
"$q3vl" build --model "$dir/base" --out "$dir/pkg" >/dev/null 2>&1 || fail "build of the base package"
package_cases=0
package_case() {
  local label=$1 edit=$2; shift 2
  rm -rf "$dir/p"
  cp -r "$dir/pkg" "$dir/p"
  (cd "$dir/p" && eval "$edit") || fail "$label: edit failed"
  expect_failure "$label (run)" "$@" -- "$q3vl" run --model "$dir/p" --prompt hi --max-new-tokens 1
  package_cases=$((package_cases + 1))
}
package_case "newer format" 'set_json q3vl_package.json format_version 2' "q3vl_package.json" 'field "format_version"' "upgrade q3vl"
package_case "format_version string" 'set_json q3vl_package.json format_version "\"1\""' \
  "q3vl_package.json" 'field "format_version": expected an integer, got string'
package_case "not our format" 'set_json q3vl_package.json format "\"other\""' "q3vl_package.json" 'field "format"'
package_case "config field string" 'set_json q3vl_package.json hidden_size "\"64\""' \
  "q3vl_package.json" 'field "config.text_config.hidden_size": expected an integer, got string'
package_case "layers beyond the model file" 'set_json q3vl_package.json num_hidden_layers 100000' \
  "q3vl_package.json" "num_hidden_layers"
package_case "rope_theta 0 in the manifest" 'set_json q3vl_package.json rope_theta 0' \
  "q3vl_package.json" 'field "config.text_config.rope_theta"'
package_case "channel width" 'set_json q3vl_package.json visual_channel_width 5' "q3vl_package.json" 'field "visual_channel_width"'
package_case "fp16 flag" 'set_json q3vl_package.json fp16 "\"no\""' "q3vl_package.json" 'fp16": expected true or false'
package_case "part file" 'set_json q3vl_package.json file "\"elsewhere.onnx\""' "q3vl_package.json" 'file": is "elsewhere.onnx"'
package_case "generation field type" 'set_json q3vl_package.json top_k "\"5\""' \
  "q3vl_package.json" 'field "generation_config.top_k": expected an integer'
package_case "genai max_length" 'set_json genai_config.json max_length "\"long\""' "genai_config.json" 'field "search.max_length"'
package_case "deeply nested manifest" 'deep_json > q3vl_package.json' "q3vl_package.json" "nested deeper"
# A config that no longer describes the models next to it (instead of ONNX Runtime errors, or a
# sampler reading the wrong logits).
package_case "one layer more than the model" 'set_json q3vl_package.json num_hidden_layers 5' \
  "text.onnx" "has 4 decoder layers" 'field "config.text_config.num_hidden_layers" says 5'
package_case "vocabulary smaller than the model" 'set_json q3vl_package.json vocab_size 151800' \
  "text.onnx" 'field "config.text_config.vocab_size" says 151800'
package_case "kv heads differ from the model" 'set_json q3vl_package.json num_key_value_heads 4' \
  "text.onnx" 'field "config.text_config.num_key_value_heads" says 4'
package_case "decoder not ONNX" 'echo garbage > text.onnx' "text.onnx" "cannot load the model"
[ "$package_cases" = 16 ] || fail "ran $package_cases package cases, expected 16"

# --only from a checkpoint of another model: refused, the package untouched.
"$q3vl" make-tiny --preset tiny --out "$dir/other" --seed 7 --quiet || fail "make-tiny other"
set_json "$dir/other/config.json" rope_theta 1000000.0
before=$(cd "$dir/pkg" && sha256sum ./* | sha256sum)
expect_failure "--only text from another model" "$dir/pkg" "different model" "text_config.rope_theta" -- \
  "$q3vl" build --model "$dir/other" --out "$dir/pkg" --only text
[ "$before" = "$(cd "$dir/pkg" && sha256sum ./* | sha256sum)" ] || fail "--only from another model changed the package"
[ ! -e "$dir/pkg.partial" ] || fail "--only left pkg.partial"
# ... and accepted from the same model (different weights, same config: a fine-tune).
"$q3vl" make-tiny --preset tiny --out "$dir/same" --seed 8 --quiet || fail "make-tiny same"
"$q3vl" build --model "$dir/same" --out "$dir/pkg" --only text >/dev/null 2>&1 || fail "--only text from the same architecture"
echo "ok: $checkpoint_cases checkpoint cases, $package_cases package cases, 2 --only cases"
