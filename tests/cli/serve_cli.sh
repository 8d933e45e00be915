#!/usr/bin/env bash
# `q3vl serve` as a process: prints its URL when ready, listens on 127.0.0.1 only by default, a
# taken port or a folder that is not a package is a one-line error (exit 1, 2 for usage) and leaves
# nothing listening, SIGINT and SIGTERM stop it with exit 0. Loopback only, every wait bounded.
set -uo pipefail
q3vl=$1
src=$2
dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$q3vl" build --model "$src/tests/fixtures/golden/models/full" --out "$dir/pkg" --tokenizer-dir "$src/.deps/tokenizer-qwen3" \
  --video-preprocessor-config "$src/assets/qwen3-vl/video_preprocessor_config.json" --quiet ||
  fail "building the test package"

# start NAME ARGS...: starts a server, waits (30 s at most) for its ready line; sets $port.
start() {
  local name=$1; shift
  "$q3vl" serve --model "$dir/pkg" --threads 1 "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
  pids+=($!)
  server_pid=$!
  for _ in $(seq 300); do
    if grep -q "ready on" "$dir/$name.out"; then
      port=$(sed -n 's#.*ready on http://127\.0\.0\.1:\([0-9]*\)/v1.*#\1#p' "$dir/$name.out")
      [ -n "$port" ] || fail "$name: ready line without a 127.0.0.1 URL: $(cat "$dir/$name.out")"
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || fail "$name exited before ready: $(cat "$dir/$name.err")"
    sleep 0.1
  done
  fail "$name: not ready after 30 s"
}

# stop SIGNAL [SECONDS]: the server exits 0 within SECONDS (15).
stop() {
  local seconds=${2:-15}
  kill "-$1" "$server_pid"
  for _ in $(seq $((seconds * 10))); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$server_pid" 2>/dev/null && fail "still running $seconds s after SIG$1"
  wait "$server_pid"
  local rc=$?
  [ "$rc" = 0 ] || fail "exit code $rc after SIG$1: $(cat "$dir"/*.err)"
}

start first --port 0
grep -q '^q3vl serve: model "pkg" ready on http://127.0.0.1:[0-9]*/v1 (1 slot of [0-9]* tokens)$' "$dir/first.out" ||
  fail "ready line: $(cat "$dir/first.out")"
curl -s --max-time 5 "http://127.0.0.1:$port/health" | grep -q '"status":"ok"' || fail "health"
# Bound to loopback only: another address of this machine does not answer.
other=$(hostname -I 2>/dev/null | awk '{print $1}')
if [ -n "$other" ] && [ "$other" != 127.0.0.1 ]; then
  curl -s --max-time 3 "http://$other:$port/health" >/dev/null && fail "answered on $other: not loopback only"
fi

# The same port again: a clear error, exit 1, quickly (before loading anything).
timeout 20 "$q3vl" serve --model "$dir/pkg" --port "$port" >"$dir/second.out" 2>"$dir/second.err"
rc=$?
[ "$rc" = 1 ] || fail "second server on a taken port exited $rc"
grep -q "cannot listen on 127.0.0.1:$port" "$dir/second.err" || fail "taken port message: $(cat "$dir/second.err")"
stop INT
grep -q "stopped" "$dir/first.err" || fail "no stop message: $(cat "$dir/first.err")"

# Not a package: exit 1 naming it; usage errors exit 2.
mkdir -p "$dir/empty"
timeout 20 "$q3vl" serve --model "$dir/empty" --port 0 >"$dir/bad.out" 2>"$dir/bad.err"
rc=$?
[ "$rc" = 1 ] || fail "serving an empty folder exited $rc: $(cat "$dir/bad.err")"
grep -q "q3vl: error: .*empty" "$dir/bad.err" || fail "empty folder message: $(cat "$dir/bad.err")"
timeout 20 "$q3vl" serve --model "$dir/pkg" --port 70000 >/dev/null 2>"$dir/usage.err"
[ $? = 2 ] || fail "--port 70000 is not a usage error"
timeout 20 "$q3vl" serve --model "$dir/pkg" --parallel 0 >/dev/null 2>"$dir/usage.err"
[ $? = 2 ] || fail "--parallel 0 is not a usage error"
timeout 20 "$q3vl" serve --model "$dir/pkg" --allowed-media-dir "$dir/nowhere" >/dev/null 2>"$dir/media.err"
[ $? = 1 ] || fail "a missing --allowed-media-dir is accepted"
timeout 20 "$q3vl" serve --model "$dir/pkg" --allowed-media-dir / >/dev/null 2>"$dir/media.err"
[ $? = 1 ] || fail "--allowed-media-dir / (every readable file) is accepted"
grep -q "root folder" "$dir/media.err" || fail "root folder message: $(cat "$dir/media.err")"
# Another address without a key: served, with a warning that anyone reaching it can use it.
timeout 5 "$q3vl" serve --model "$dir/pkg" --host 127.0.0.2 --port 0 --threads 1 >/dev/null 2>"$dir/public.err"
grep -q "without --api-key" "$dir/public.err" || fail "no warning for 127.0.0.2 without a key: $(cat "$dir/public.err")"

# SIGTERM with a request in flight: it is answered, then the server exits 0.
start third --port 0 --shutdown-timeout 600  # sanitizer builds are slow: finish, not cut
curl -s --max-time 150 "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"messages":[{"role":"user","content":"Hello"}],"temperature":0,"max_tokens":1500}' >"$dir/inflight.json" &
curl_pid=$!
sleep 0.5
stop TERM 120  # the reply finishes first: ~2 s here, ~25 s under ThreadSanitizer
wait "$curl_pid"
grep -q '"object":"chat.completion"' "$dir/inflight.json" || fail "in-flight request not answered: $(head -c 300 "$dir/inflight.json")"
echo ok
