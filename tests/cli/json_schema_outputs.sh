#!/usr/bin/env bash
# Structured output (issue 15): `q3vl run --json-schema` / `--json` on the random-weight golden
# model, for every schema of tests/fixtures/json_schemas, greedy and sampled, with token limits
# from tight (the shortest completion must step in) to roomy: every reply parses and validates
# with ajv. Unsupported schema keywords are refused by name (exit 1).
set -uo pipefail
q3vl=$1
src=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$q3vl" build --model "$src/tests/fixtures/golden/models/full" --out "$dir/pkg" --tokenizer-dir "$src/.deps/tokenizer-qwen3" \
  --video-preprocessor-config "$src/assets/qwen3-vl/video_preprocessor_config.json" --quiet ||
  fail "building the test package"
cases=$dir/cases.jsonl
: >"$cases"
expected=0
add_case() {  # LABEL SCHEMA_FILE_OR_EMPTY ARGS...
  local label=$1 schema=$2; shift 2
  local reply
  reply=$("$q3vl" run --model "$dir/pkg" "$@" 2>"$dir/err") || fail "$label: exit $?: $(cat "$dir/err")"
  node -e 'const [l, s, r] = process.argv.slice(1); console.log(JSON.stringify({label: l, schema: s || null, reply: r}))' \
    "$label" "$schema" "$reply" >>"$cases"
  expected=$((expected + 1))
}
for schema in "$src"/tests/fixtures/json_schemas/*.json; do
  name=$(basename "$schema" .json)
  for tokens in 32 48 160; do
    add_case "$name greedy $tokens" "$schema" --prompt "Answer in JSON." --json-schema "$schema" --greedy --max-new-tokens $tokens
    add_case "$name sampled $tokens" "$schema" --prompt "Answer in JSON." --json-schema "$schema" --temperature 1.2 --seed $tokens \
      --max-new-tokens $tokens
  done
done
for tokens in 8 64; do
  add_case "json object greedy $tokens" "" --prompt "JSON please" --json --greedy --max-new-tokens $tokens
  add_case "json object sampled $tokens" "" --prompt "JSON please" --json --temperature 1.5 --seed 7 --max-new-tokens $tokens
done
node "$(dirname "$0")/validate_json.mjs" "$src/.deps/node" "$cases" || fail "invalid replies (above)"
[ "$(wc -l <"$cases")" = "$expected" ] && [ "$expected" = 52 ] || fail "checked $(wc -l <"$cases") replies, expected 52"

# Refused: keywords the decoder cannot enforce, by name; a schema that is not JSON.
"$q3vl" run --model "$dir/pkg" --prompt x --json-schema '{"type":"string","pattern":"^a+$"}' >/dev/null 2>"$dir/err" &&
  fail "pattern accepted"
grep -q "'pattern' is not supported" "$dir/err" || fail "pattern message: $(cat "$dir/err")"
"$q3vl" run --model "$dir/pkg" --prompt x --json-schema '{"type":' >/dev/null 2>"$dir/err" && fail "broken schema accepted"
grep -q "not valid JSON" "$dir/err" || fail "broken schema message: $(cat "$dir/err")"
# Hostile --json-schema values: an empty file, a folder, an endless device: each a message, exit 1.
: >"$dir/empty.json"
for bad in "$dir/empty.json" "$dir" /dev/zero; do
  "$q3vl" run --model "$dir/pkg" --prompt x --json-schema "$bad" >/dev/null 2>"$dir/err"
  [ $? = 1 ] || fail "--json-schema $bad: not refused with exit 1"
  grep -q "q3vl: error: .*\(not valid JSON\|is a directory\|more than\)" "$dir/err" || fail "--json-schema $bad message: $(cat "$dir/err")"
done
echo ok
