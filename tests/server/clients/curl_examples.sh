#!/usr/bin/env bash
# The README's curl examples for `q3vl serve`, run as written against a server on the golden test
# package (tests/fixtures/golden/models/full, built into a package folder named qwen3-vl), and
# their answers checked: greedy text equal to Hugging Face's, the stream's SSE framing, the image
# sent as a data URL. Only the address is replaced (the examples say 127.0.0.1:8080; the server
# here takes a free port).
#
#   curl_examples.sh Q3VL_BINARY [SOURCE_DIR]      (or Q3VL=... in the environment)
# Exit 77 (skipped) without curl, node or base64.
set -euo pipefail

q3vl=${1:-${Q3VL:-}}
src=${2:-$(cd "$(dirname "$0")/../../.." && pwd)}
[[ -n $q3vl && -x $q3vl ]] || { echo "usage: $0 Q3VL_BINARY [SOURCE_DIR]" >&2; exit 2; }
export Q3VL=$q3vl Q3VL_SOURCE_DIR=$src  # for serve.mjs in the checks
for tool in curl node base64; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done

# ---- The examples, exactly as the README shows them -------------------------------------------
read -r -d '' EXAMPLE_PLAIN <<'EOF' || true
curl -s http://127.0.0.1:8080/v1/chat/completions \
  -H "Content-Type: application/json" \
  -d '{
    "model": "qwen3-vl",
    "messages": [{"role": "user", "content": "Write one sentence about the sea."}],
    "temperature": 0,
    "max_tokens": 32
  }'
EOF

read -r -d '' EXAMPLE_STREAM <<'EOF' || true
curl -sN http://127.0.0.1:8080/v1/chat/completions \
  -H "Content-Type: application/json" \
  -d '{
    "model": "qwen3-vl",
    "messages": [{"role": "user", "content": "Write one sentence about the sea."}],
    "temperature": 0,
    "max_tokens": 32,
    "stream": true,
    "stream_options": {"include_usage": true}
  }'
EOF

# printf is a shell builtin: a large image's base64 never meets the kernel's argument size limit.
read -r -d '' EXAMPLE_IMAGE <<'EOF' || true
printf '{
  "model": "qwen3-vl",
  "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": [
      {"type": "image_url", "image_url": {"url": "data:image/png;base64,%s"}},
      {"type": "text", "text": "Describe this image."}
    ]}
  ],
  "temperature": 0,
  "max_tokens": 32
}' "$(base64 -w0 photo.png)" |
curl -s http://127.0.0.1:8080/v1/chat/completions \
  -H "Content-Type: application/json" \
  -d @-
EOF
# -----------------------------------------------------------------------------------------------

work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$q3vl" build --model "$src/tests/fixtures/golden/models/full" --out "$work/qwen3-vl" \
  --tokenizer-dir "$src/.deps/tokenizer-qwen3" \
  --video-preprocessor-config "$src/assets/qwen3-vl/video_preprocessor_config.json" --quiet
cp "$src/tests/fixtures/golden/cases/full_image_system/image0.png" "$work/photo.png"

"$q3vl" serve --model "$work/qwen3-vl" --port 0 --threads 1 >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
base=
for _ in $(seq 600); do
  base=$(sed -n 's|^q3vl serve: model "qwen3-vl" ready on \(http://127\.0\.0\.1:[0-9]*\)/v1 ([0-9]* slots\{0,1\} of [0-9]* tokens)$|\1|p' "$work/serve.out")
  [[ -n $base ]] && break
  kill -0 "$server_pid" 2>/dev/null || { echo "FAIL: q3vl serve exited before it was ready"; cat "$work/serve.err"; exit 1; }
  sleep 0.1
done
[[ -n $base ]] || { echo "FAIL: no ready line within 60 s"; cat "$work/serve.out" "$work/serve.err"; exit 1; }
echo "server at $base"

run_example() {  # NAME SCRIPT: runs it in $work with the address replaced, output to $work/NAME.out
  local name=$1 script=${2//http:\/\/127.0.0.1:8080/$base}
  (cd "$work" && bash -euo pipefail -c "$script") >"$work/$name.out" || { echo "FAIL: $name: exit $?"; exit 1; }
}

failed=0
check() {  # NAME MODE CASE: node checks $work/NAME.out against the golden case's greedy text
  if node --input-type=module - "$work/$1.out" "$2" "$3" <<'EOF'
import { readFileSync } from 'node:fs';
const { loadManifest, schemaValidators } = await import(`${process.env.Q3VL_SOURCE_DIR}/tests/server/clients/serve.mjs`);
const [file, mode, caseName] = process.argv.slice(-3);
const expected = loadManifest().cases[caseName].greedy.decoded_text;
const validate = schemaValidators();
const body = readFileSync(file, 'utf8');
let text;
if (mode === 'json') {
  const completion = validate.completion(JSON.parse(body));
  if (completion.choices[0].finish_reason !== 'length') throw new Error(`finish_reason ${completion.choices[0].finish_reason}`);
  text = completion.choices[0].message.content;
} else {
  // Server-sent events: `data: {...}` blocks, each ended by a blank line, then `data: [DONE]`.
  const events = body.split('\n\n');
  if (events.pop() !== '') throw new Error('the stream does not end with a blank line');
  if (events.at(-1) !== 'data: [DONE]') throw new Error(`last event ${JSON.stringify(events.at(-1))}, not data: [DONE]`);
  const chunks = events.slice(0, -1).map((event) => {
    if (!event.startsWith('data: ')) throw new Error(`not a data event: ${JSON.stringify(event.slice(0, 200))}`);
    return validate.chunk(JSON.parse(event.slice(6)));
  });
  const usage = chunks.at(-1);
  if (usage.choices.length !== 0 || usage.usage?.completion_tokens !== 32) throw new Error(`last chunk ${JSON.stringify(usage)}`);
  text = chunks.slice(0, -1).map((chunk) => chunk.choices[0].delta.content ?? '').join('');
  if (chunks.at(-2).choices[0].finish_reason !== 'length') throw new Error('no finish_reason length before the usage chunk');
  console.log(`  ${chunks.length} chunks`);
}
if (text !== expected) throw new Error(`text ${JSON.stringify(text)}\n  expected ${JSON.stringify(expected)}`);
EOF
  then echo "ok: $1"; else echo "FAIL: $1 ($(head -c 300 "$work/$1.out"))"; failed=1; fi
}

# Once the README shows the examples, it must show these very ones.
readme=$src/README.md
if grep -qF 'curl -s http://127.0.0.1:8080/v1/chat/completions' "$readme"; then
  for name in PLAIN STREAM IMAGE; do
    var=EXAMPLE_$name
    if EXAMPLE=${!var} node -e 'process.exit(require("fs").readFileSync(process.argv[1], "utf8").includes(process.env.EXAMPLE) ? 0 : 1)' "$readme"
    then echo "ok: README.md shows the $name example verbatim"
    else echo "FAIL: README.md's $name example is not the one run here"; failed=1
    fi
  done
else
  echo "note: README.md shows no curl example for q3vl serve yet; nothing compared"
fi

run_example plain "$EXAMPLE_PLAIN";   check plain json full_text_only
run_example stream "$EXAMPLE_STREAM"; check stream sse full_text_only
run_example image "$EXAMPLE_IMAGE";   check image json full_image_system

kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=
[[ $status -eq 0 ]] || { echo "FAIL: q3vl serve exited with $status after SIGTERM"; tail -20 "$work/serve.err"; failed=1; }
exit $failed
