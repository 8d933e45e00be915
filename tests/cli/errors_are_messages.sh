#!/usr/bin/env bash
# Bad input gives a one-line error naming what is wrong and exit code 1 (2 for usage), never a crash.
set -uo pipefail
q3vl=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

expect_error() {  # expect_error CODE NEEDLE ARGS...
  local code=$1 needle=$2; shift 2
  "$q3vl" "$@" >"$dir/out" 2>"$dir/err"
  local rc=$?
  [ "$rc" = "$code" ] || fail "q3vl $* exited $rc, expected $code: $(cat "$dir/err")"
  grep -q -- "$needle" "$dir/err" || fail "q3vl $*: error does not mention '$needle': $(cat "$dir/err")"
}

expect_error 2 "preset" make-tiny --out "$dir/x" --preset
expect_error 2 "preset: 13b not in" make-tiny --preset 13b --out "$dir/x"
expect_error 1 "not a checkpoint folder" inspect --model "$dir/none"
mkdir -p "$dir/bad"
echo '{"model_type": "qwen3_vl", "text_config": ' > "$dir/bad/config.json"
expect_error 1 "config.json: not valid JSON" inspect --model "$dir/bad"
"$q3vl" make-tiny --preset tiny --out "$dir/m" --quiet || fail "make-tiny"
head -c 1000 "$dir/m/model.safetensors" > "$dir/m/cut" && mv "$dir/m/cut" "$dir/m/model.safetensors"
expect_error 1 "model.safetensors" inspect --model "$dir/m"
: > "$dir/m/model.safetensors"
expect_error 1 "too small" inspect --model "$dir/m"
echo ok
