#!/usr/bin/env bash
# Thinking models and tool calls from the command line (issue 15), on the random-weight golden model
# packaged with Qwen3-VL Thinking's published template: the reasoning is printed plain into a file
# (dimmed only on a terminal), left out with --hide-thinking, and returned apart with --reply-json;
# a tool-call round trip (--tools, --tool-choice required, --reply-json, then the call and its
# result sent back with --messages) works and its arguments validate with ajv; --json-schema after
# the reasoning gives a valid document; malformed tool inputs are refused by name.
set -uo pipefail
q3vl=$1
src=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
json() { node -e "$1" "${@:2}"; }  # a small check in JavaScript over argv

"$q3vl" build --model "$src/tests/fixtures/golden/models/full" --out "$dir/pkg" --tokenizer-dir "$src/.deps/tokenizer-qwen3" \
  --video-preprocessor-config "$src/assets/qwen3-vl/video_preprocessor_config.json" \
  --chat-template "$src/assets/qwen3-vl-thinking/chat_template.json" --quiet || fail "building the Thinking package"
run() { "$q3vl" run --model "$dir/pkg" "$@" 2>"$dir/err"; }

# The reasoning: an untrained model never closes <think>, so all it writes is reasoning.
run --prompt "Why is the sky blue?" --greedy --max-new-tokens 12 --reply-json >"$dir/reply.json" || fail "reply-json: $(cat "$dir/err")"
json 'const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (m.role !== "assistant" || m.content !== "" || !(m.reasoning_content.length > 0) || m.finish_reason !== "length")
    throw new Error(JSON.stringify(m));' "$dir/reply.json" || fail "reply-json shape"
run --prompt "Why is the sky blue?" --greedy --max-new-tokens 12 >"$dir/plain.txt" || fail "plain run: $(cat "$dir/err")"
json 'const fs = require("fs"); const m = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  const text = fs.readFileSync(process.argv[2], "utf8");
  if (text !== m.reasoning_content + "\n") throw new Error(JSON.stringify(text) + " vs " + JSON.stringify(m.reasoning_content));' \
  "$dir/reply.json" "$dir/plain.txt" || fail "the reasoning is printed plain when stdout is a file"
grep -q $'\x1b' "$dir/plain.txt" && fail "escape codes in a file"
run --prompt "Why is the sky blue?" --greedy --max-new-tokens 12 --hide-thinking >"$dir/hidden.txt" || fail "hide-thinking"
[ "$(cat "$dir/hidden.txt")" = "" ] || fail "--hide-thinking printed: $(cat "$dir/hidden.txt")"

# The tool-call round trip.
cat >"$dir/tools.json" <<'JSON'
[{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city", "parameters": {"type": "object",
  "properties": {"city": {"type": "string", "maxLength": 16}, "unit": {"enum": ["celsius", "fahrenheit"]}},
  "required": ["city", "unit"], "additionalProperties": false}}}]
JSON
echo '[{"role": "user", "content": "What is the weather in Paris?"}]' >"$dir/chat.json"
run --messages "$dir/chat.json" --tools "$dir/tools.json" --tool-choice required --temperature 1.0 --seed 4 --max-new-tokens 80 \
  --reply-json >"$dir/call.json" || fail "tool call: $(cat "$dir/err")"
json 'const fs = require("fs"); const path = require("path");
  const Ajv = require("module").createRequire(path.resolve(process.argv[3], "x"))("ajv").default;
  const m = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  const tools = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  if (m.finish_reason !== "tool_calls" || m.tool_calls.length !== 1) throw new Error(JSON.stringify(m));
  const call = m.tool_calls[0];
  if (call.type !== "function" || call.function.name !== "get_weather" || !/^call_[0-9a-f]{24}$/.test(call.id)) throw new Error(JSON.stringify(call));
  const validate = new Ajv({ strict: false }).compile(tools[0].function.parameters);
  if (!validate(JSON.parse(call.function.arguments))) throw new Error(call.function.arguments);' \
  "$dir/call.json" "$dir/tools.json" "$src/.deps/node" || fail "the tool call (above)"
json 'const fs = require("fs"); const chat = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  const m = JSON.parse(fs.readFileSync(process.argv[2], "utf8")); delete m.finish_reason;
  chat.push(m, { role: "tool", tool_call_id: m.tool_calls[0].id, content: "{\"temperature\": 21}" });
  fs.writeFileSync(process.argv[1], JSON.stringify(chat));' "$dir/chat.json" "$dir/call.json"
run --messages "$dir/chat.json" --tools "$dir/tools.json" --greedy --max-new-tokens 8 --reply-json --verbose >"$dir/answer.json" ||
  fail "answering the tool result: $(cat "$dir/err")"
json 'const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (m.role !== "assistant" || typeof m.content !== "string") throw new Error(JSON.stringify(m));' "$dir/answer.json" ||
  fail "the answer to the tool result"

# Structured output after the reasoning.
echo '{"type": "object", "properties": {"answer": {"type": "string", "maxLength": 20}}, "required": ["answer"]}' >"$dir/schema.json"
run --prompt "Answer in JSON." --json-schema "$dir/schema.json" --greedy --max-new-tokens 40 --reply-json >"$dir/structured.json" ||
  fail "json-schema: $(cat "$dir/err")"
json 'const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (!(m.reasoning_content.length > 0) || typeof JSON.parse(m.content).answer !== "string") throw new Error(JSON.stringify(m));' \
  "$dir/structured.json" || fail "the structured reply"

# Refused by name, exit 1 (or 2 for the command line).
expect_error() {  # CODE PHRASE ARGS...
  local code=$1 phrase=$2; shift 2
  run "$@" >/dev/null
  local got=$?
  [ $got = "$code" ] || fail "$*: exit $got, expected $code: $(cat "$dir/err")"
  grep -q -- "$phrase" "$dir/err" || fail "$*: message: $(cat "$dir/err")"
}
expect_error 1 "needs --tools" --prompt x --tool-choice required
expect_error 1 "no tool named \"nope\"" --prompt x --tools "$dir/tools.json" --tool-choice nope
expect_error 1 "--tools: not valid JSON" --prompt x --tools '['
echo '{"type": "function"}' >"$dir/object.json"
expect_error 1 "expected a JSON list" --prompt x --tools "$dir/object.json"
echo '[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}]' >"$dir/bad.json"
expect_error 1 "the last message must be a user message or a tool result" --messages "$dir/bad.json"
echo '[{"role": "user", "content": "hi"' >"$dir/broken.json"
expect_error 1 "--messages $dir/broken.json" --messages "$dir/broken.json"
expect_error 2 "--prompt" --messages "$dir/chat.json" --prompt x
# Hostile --messages, --tools and --template-vars values: each a message naming it, exit 1.
echo '[{"role": "user", "content": "hi"}], "max_tokens": 1' >"$dir/injected.json"
expect_error 1 "--messages $dir/injected.json: not valid JSON" --messages "$dir/injected.json"
echo '{"role": "user", "content": "hi"}' >"$dir/not_a_list.json"
expect_error 1 "expected a JSON list of messages" --messages "$dir/not_a_list.json"
: >"$dir/empty.json"
for flag in --messages --tools --template-vars; do
  for bad in "$dir/empty.json" "$dir" /dev/zero; do
    extra=(); [ "$flag" = --messages ] || extra=(--prompt x)
    expect_error 1 "q3vl: error: .*\(not valid JSON\|is a directory\|more than\)" "${extra[@]}" "$flag" "$bad"
  done
done
# Media a chat file names are read only from its own folder: not /etc/passwd, not through a link.
echo '[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "/etc/passwd"}}]}]' >"$dir/outside.json"
expect_error 1 "messages\[0\].content\[0\]" --messages "$dir/outside.json"
ln -s /etc/passwd "$dir/link.png"
echo '[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "link.png"}}]}]' >"$dir/link.json"
expect_error 1 "messages\[0\].content\[0\]" --messages "$dir/link.json"
[ -s /etc/passwd ] || fail "/etc/passwd is gone"
expect_error 1 "cannot set \"messages\"" --prompt x --template-vars '{"messages": []}'
run --prompt x --template-vars '{"enable_thinking": false}' --greedy --max-new-tokens 2 >/dev/null || fail "--template-vars: $(cat "$dir/err")"
echo ok
