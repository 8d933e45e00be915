#!/usr/bin/env bash
# q3vl serve against llama-server through the OpenAI API, alternating, on one checkpoint: for each
# round, starts one server, runs bench/openai_load.mjs (all scenarios), prints its peak RSS, stops
# it, then the other. Both get the same threads and slots.
#   bench/serve_compare.sh PKG TEXT.gguf MMPROJ.gguf IMAGE [OUT_DIR]
# Environment: Q3VL (build/q3vl), LLAMA_SERVER (llama-server from ../shared/anchors/llamacpp.sh
# build), ROUNDS (2), THREADS (2), SLOTS (8), CONTEXT (2048 per slot), STREAMS (1,2,4,8),
# EXTRA (more openai_load.mjs options, e.g. "--distinct 1 --scenario streams").
set -euo pipefail
[ $# -ge 4 ] || { sed -n 2,8p "$0"; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
pkg=$1 text=$2 mmproj=$3 image=$4 out=${5:-${TMPDIR:-/tmp}/q3vl-serve-compare}
q3vl=${Q3VL:-$here/build/q3vl}
llama=${LLAMA_SERVER:?set LLAMA_SERVER to llama-server built by ../shared/anchors/llamacpp.sh build}
threads=${THREADS:-2} slots=${SLOTS:-8} context=${CONTEXT:-2048}
mkdir -p "$out"
wait_ready() { for _ in $(seq 1200); do curl -sf --max-time 2 "$1/health" >/dev/null && return 0; sleep 0.5; done; return 1; }
load() {  # URL LABEL JSON
  node "$here/bench/openai_load.mjs" --url "$1" --scenario all --streams "${STREAMS:-1,2,4,8}" --requests 2 --max-tokens 64 \
    --image "$image" --busy-streams 3 --label "$2" --json "$3" ${EXTRA:-}
}
run_server() {  # NAME PORT COMMAND...
  local name=$1 port=$2; shift 2
  "$@" >"$out/$name.log" 2>&1 &
  local pid=$!
  wait_ready "http://127.0.0.1:$port" || { echo "$name did not start; see $out/$name.log" >&2; kill "$pid"; return 1; }
  load "http://127.0.0.1:$port/v1" "$name" "$out/$name.json"
  echo "$name peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)"
  kill -TERM "$pid"
  wait "$pid" || true
}
lscpu | sed -n 's/^Model name: *//p'
for round in $(seq "${ROUNDS:-2}"); do
  run_server "q3vl-$round" 18401 "$q3vl" serve --model "$pkg" --port 18401 --threads "$threads" --parallel "$slots" \
    --context "$context" --name q3vl
  run_server "llama-$round" 18402 "$llama" -m "$text" --mmproj "$mmproj" -np "$slots" -c $((slots * context)) -t "$threads" \
    --host 127.0.0.1 --port 18402
done
