#!/usr/bin/env bash
# Two replicas of `q3vl serve` behind nginx with the shipped deploy/nginx/q3vl.conf (only its
# ports changed): (a) greedy replies through nginx equal a replica's own, and both replicas serve;
# (b) a stream arrives through nginx as server-sent events, event by event; (c) a replica killed
# with SIGKILL while requests flow: every request sent from 1 s after the kill on succeeds, and a
# failure is allowed only for a request that was in flight on the killed replica; (d) a rolling
# restart: replica 1 runs again on its port, then replica 2 gets SIGTERM while requests flow and
# while it generates a long reply: that reply completes, no request fails, it exits with status 0.
# Also: nginx -t accepts the file and its affinity alternative, nginx closes idle upstream
# connections before the replicas do, the API key passes through (401 without it).
# Everything on 127.0.0.1, every wait bounded. Exit 77 (skipped) without nginx, curl or node.
# Usage: scale_out_test.sh Q3VL_BIN SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
nginx_bin=$(command -v nginx || command -v /usr/sbin/nginx || true)
for tool in nginx curl node; do
  if [ "$tool" = nginx ] && [ -n "$nginx_bin" ]; then continue; fi
  command -v "$tool" >/dev/null || { echo "SKIP: nginx, curl and node are needed ($tool is missing)"; exit 77; }
done

dir=$(mktemp -d)
nginx_pid=
cleanup() {
  # Only what this script started: the replicas (pid files), nginx (its master and, if it does
  # not stop on SIGTERM, its workers), the clients.
  local pid i workers
  for pid in ${client_pids[@]+"${client_pids[@]}"}; do  # the client loops and their curl
    { kill -KILL $(pgrep -P "$pid" || true) "$pid"; wait "$pid"; } 2>/dev/null || true
  done
  for pid in $(cat "$dir"/r*.pid 2>/dev/null); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ -n "${nginx_pid:-}" ]; then
    workers=$(pgrep -P "$nginx_pid" || true)
    kill -TERM "$nginx_pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.1; done
    for pid in "$nginx_pid" $workers; do kill -KILL "$pid" 2>/dev/null || true; done
    wait "$nginx_pid" 2>/dev/null || true
  fi
  # Q3VL_DEPLOY_TEST_LOGS=DIR keeps the logs (replicas, nginx, clients) for a look afterwards.
  if [ -n "${Q3VL_DEPLOY_TEST_LOGS:-}" ]; then
    mkdir -p "$Q3VL_DEPLOY_TEST_LOGS" && cp -r "$dir"/r*.log "$dir/nginx" "$dir"/c "$dir"/d "$Q3VL_DEPLOY_TEST_LOGS"/ 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
client_pids=()
check="node $src/tests/deploy/check.js"
key=scale-out-test-key
auth="Authorization: Bearer $key"
started=$(date +%s.%N)
fail() { echo "FAIL: $*"; for f in "$dir"/r1.log "$dir"/r2.log "$dir"/nginx/logs/error.log; do
  [ -f "$f" ] && { echo "--- tail $f"; tail -n 15 "$f"; }; done; exit 1; }
since() { awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'; }

"$bin" build --model "$src/tests/fixtures/golden/models/full" --out "$dir/pkg" \
  --tokenizer-dir "$src/.deps/tokenizer-qwen3" \
  --video-preprocessor-config "$src/assets/qwen3-vl/video_preprocessor_config.json" --quiet

# Free loopback ports below the ephemeral range (as 8081, 8082 are): a port from that range can be
# taken by one of the test's own outgoing connections once its replica is gone, and replica 1 is
# started again on its port in (d).
free_port() {
  node -e '
    const net = require("net");
    let low = 32768;
    try { low = Number(require("fs").readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").split(/\s+/)[0]); } catch {}
    const from = Math.max(1024, Math.min(low, 32768) - 12000), to = Math.max(from + 1000, Math.min(low, 32768)) - 1;
    const taken = new Set(process.argv.slice(1).map(Number));
    (function next(tries) {
      if (!tries) { console.error("no free port"); process.exit(1); }
      const port = from + Math.floor(Math.random() * (to - from));
      if (taken.has(port)) return next(tries - 1);
      const s = net.createServer().once("error", () => next(tries - 1))
        .listen(port, "127.0.0.1", () => { console.log(port); s.close(); });
    })(100);' "$@"
}
# Replica N on PORT, in a subshell that writes its exit status to rN.rc; the server's own pid goes
# to rN.pid (exec keeps it).
start_replica() {  # N PORT
  local n=$1 port=$2
  # The old log goes too: a restarted replica's ready check must not find the last run's line.
  rm -f "$dir/r$n.rc" "$dir/r$n.pid" "$dir/r$n.log"
  ( Q3VL_API_KEY=$key sh -c 'echo $$ > "$0"; exec "$@"' "$dir/r$n.pid" "$bin" serve --model "$dir/pkg" \
      --port "$port" --host 127.0.0.1 --threads 1 --shutdown-timeout 600 >"$dir/r$n.log" 2>&1
    echo $? >"$dir/r$n.rc" ) 2>/dev/null &
}
replica_ready() {  # N PORT: waits for the ready line
  local n=$1 port=$2 i
  for i in $(seq 300); do
    [ -s "$dir/r$n.pid" ] && grep -q "^q3vl serve: model \".*\" ready on http://127\.0\.0\.1:$port/v1 " "$dir/r$n.log" 2>/dev/null &&
      return 0
    [ -f "$dir/r$n.rc" ] && fail "replica $n exited with status $(cat "$dir/r$n.rc") before it was ready"
    sleep 0.1
  done
  fail "replica $n printed no ready line for port $port in 30 s"
}
p1=$(free_port)
p2=$(free_port "$p1")
start_replica 1 "$p1"
start_replica 2 "$p2"
replica_ready 1 "$p1"
replica_ready 2 "$p2"
pid1=$(cat "$dir/r1.pid")
pid2=$(cat "$dir/r2.pid")

# nginx: the shipped config with the replicas' ports and a loopback listen port, included from a
# main config whose pid, temp folders and logs lie in its own prefix.
shipped=$src/deploy/nginx/q3vl.conf
mkdir -p "$dir/nginx/logs" "$dir/nginx/tmp"
start_nginx() {
  np=$(free_port "$p1" "$p2")
  sed -e "s/server 127\.0\.0\.1:8081 /server 127.0.0.1:$p1 /" -e "s/server 127\.0\.0\.1:8082 /server 127.0.0.1:$p2 /" \
      -e "s/^\( *\)listen 80;/\1listen 127.0.0.1:$np;/" "$shipped" >"$dir/nginx/q3vl.conf"
  # The substitutions must all have happened, and nothing else differs.
  [ "$(diff "$shipped" "$dir/nginx/q3vl.conf" | grep -c '^>')" = 3 ] ||
    fail "deploy/nginx/q3vl.conf no longer has the lines this test rewrites (server 127.0.0.1:8081/8082, listen 80)"
  cat >"$dir/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid nginx.pid;
error_log logs/error.log notice;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
events { worker_connections 512; }
http {
    log_format test 'T \$http_x_test_id \$status \$request_time [\$upstream_status] \$upstream_addr';
    access_log logs/access.log test;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    include q3vl.conf;
}
EOF
  "$nginx_bin" -p "$dir/nginx" -c nginx.conf -e stderr -t -q || fail "nginx -t rejects the config"
  # The commented affinity alternative (hash on X-Conversation-Id instead of least_conn) is valid too.
  sed -e 's/^\( *\)least_conn;/\1# least_conn;/' -e 's/^\( *\)#hash \$q3vl_affinity consistent;/\1hash $q3vl_affinity consistent;/' \
    "$dir/nginx/q3vl.conf" >"$dir/nginx/q3vl-affinity.conf"
  grep -q '^ *hash \$q3vl_affinity consistent;' "$dir/nginx/q3vl-affinity.conf" ||
    fail "deploy/nginx/q3vl.conf has no commented '#hash \$q3vl_affinity consistent;' line"
  sed 's/include q3vl.conf;/include q3vl-affinity.conf;/' "$dir/nginx/nginx.conf" >"$dir/nginx/nginx-affinity.conf"
  "$nginx_bin" -p "$dir/nginx" -c nginx-affinity.conf -e stderr -t -q || fail "nginx -t rejects the affinity alternative"
  "$nginx_bin" -p "$dir/nginx" -c nginx.conf -e stderr 2>>"$dir/nginx/logs/error.log" &
  nginx_pid=$!
  local i
  for i in $(seq 50); do
    kill -0 "$nginx_pid" 2>/dev/null || return 1
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$np/health" && return 0
    sleep 0.1
  done
  return 1
}
for attempt in 1 2 3; do
  start_nginx && break
  { kill -KILL "$nginx_pid"; wait "$nginx_pid"; } 2>/dev/null || true; nginx_pid=
  [ "$attempt" = 3 ] && fail "nginx did not start"
done
health=$(curl -s --max-time 5 "http://127.0.0.1:$np/health")
case "$health" in *'"status":"ok"'*) ;; *) fail "GET /health through nginx: $health";; esac
# nginx must close an idle upstream connection before the replica does (else a request sent on
# it as the replica closes it fails): its keepalive_timeout below the replica's Keep-Alive timeout.
replica_idle=$(curl -s -D - -o /dev/null --max-time 5 "http://127.0.0.1:$p1/health" | tr -d '\r' |
  sed -n 's/^Keep-Alive: .*timeout=\([0-9]*\).*/\1/ip')
nginx_idle=$(sed -n 's/^ *keepalive_timeout \([0-9]*\)s;/\1/p' "$shipped")
[ -n "$replica_idle" ] && [ -n "$nginx_idle" ] || fail "no Keep-Alive timeout from the replica ($replica_idle) or in the config ($nginx_idle)"
[ "$nginx_idle" -lt "$replica_idle" ] ||
  fail "deploy/nginx/q3vl.conf keeps idle upstream connections ${nginx_idle} s, the replicas close them after ${replica_idle} s"
echo "replicas on :$p1 and :$p2, nginx on :$np; idle upstream connections closed by nginx after ${nginx_idle} s, replicas after ${replica_idle} s ($(since))"

body() {  # PROMPT_NUMBER MAX_TOKENS [STREAM]
  printf '{"messages":[{"role":"user","content":"Tell me about place number %s, please."}],"temperature":0,"max_tokens":%s%s}' \
    "$1" "$2" "${3:+,\"stream\":true}"
}
chat() {  # PORT OUT_FILE PROMPT_NUMBER MAX_TOKENS [EXTRA CURL ARGS]: prints the HTTP status
  local port=$1 out=$2 prompt=$3 max=$4; shift 4
  curl -s -o "$out" -w '%{http_code}' --max-time 30 -H "$auth" -H 'Content-Type: application/json' "$@" \
    -d "$(body "$prompt" "$max")" "http://127.0.0.1:$port/v1/chat/completions" || true
}
served() {  # PORT: chat completions answered 200 so far
  local n
  n=$(curl -s --max-time 5 -H "$auth" "http://127.0.0.1:$1/metrics" | sed -n 's/^q3vl_requests_total{status="200"} //p')
  echo "${n:-0}"
}

# The API key reaches the replicas through nginx (and a 401 is not retried elsewhere).
status=$(curl -s -o "$dir/noauth.json" -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
  -d "$(body 0 4)" "http://127.0.0.1:$np/v1/chat/completions" || true)
[ "$status" = 401 ] || fail "a request without the API key through nginx: HTTP $status (expected 401)"

# (a) References straight from each replica; then 20 requests through nginx, 4 at a time.
mkdir -p "$dir/a"
refs="{"
for p in 0 1 2 3; do
  for r in 1 2; do
    port=$([ $r = 1 ] && echo "$p1" || echo "$p2")
    status=$(chat "$port" "$dir/a/ref$p.$r.json" $p 24)
    [ "$status" = 200 ] || fail "direct request to replica $r: HTTP $status: $(cat "$dir/a/ref$p.$r.json" 2>/dev/null)"
  done
  c1=$($check content "$dir/a/ref$p.1.json")
  c2=$($check content "$dir/a/ref$p.2.json")
  [ "$c1" = "$c2" ] || fail "the two replicas give different greedy replies to prompt $p: $c1 vs $c2"
  refs+="$([ $p = 0 ] || echo ,)\"$p\":$c1"
done
refs+="}"
echo "$refs" >"$dir/refs.json"
before1=$(served "$p1"); before2=$(served "$p2")
for wave in 0 1 2 3 4; do
  wave_pids=()
  for k in 0 1 2 3; do
    i=$((wave * 4 + k))
    ( chat "$np" "$dir/a/$i.json" $((i % 4)) 24 -H "X-Test-Id: a-$i" >"$dir/a/$i.status" ) &
    wave_pids+=($!)
  done
  wait "${wave_pids[@]}"
done
for i in $(seq 0 19); do
  status=$(cat "$dir/a/$i.status")
  [ "$status" = 200 ] || fail "request $i through nginx: HTTP $status: $(cat "$dir/a/$i.json" 2>/dev/null)"
  got=$($check content "$dir/a/$i.json")
  want=$($check content "$dir/a/ref$((i % 4)).1.json")
  [ "$got" = "$want" ] || fail "request $i through nginx replied $got, the replica directly $want"
done
n1=$(( $(served "$p1") - before1 )); n2=$(( $(served "$p2") - before2 ))
[ $((n1 + n2)) = 20 ] || fail "the replicas counted $n1 + $n2 requests answered 200, nginx sent 20"
[ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] || fail "one replica served all 20 requests ($n1 and $n2): no balancing"
echo "(a) 20 greedy requests through nginx: all 200, same replies as the replicas directly; replica 1 served $n1, replica 2 $n2 ($(since))"

# (b) A stream through nginx: SSE events arrive one read after another, not all at the end.
body 0 400 stream >"$dir/stream.json"
stream=$($check stream "$np" "$key" "$dir/stream.json")
status=$(chat "$p1" "$dir/b.json" 0 400)
[ "$status" = 200 ] || fail "direct request for the stream's reference: HTTP $status"
want=$($check content "$dir/b.json")
node -e '
  const s = JSON.parse(process.argv[1]), want = JSON.parse(process.argv[2]);
  const problems = [];
  if (s.error) problems.push(s.error);
  if (s.status !== 200) problems.push(`HTTP ${s.status}`);
  if (!/^text\/event-stream/.test(s.contentType || "")) problems.push(`Content-Type ${s.contentType}`);
  if (s.transferEncoding !== "chunked") problems.push(`Transfer-Encoding ${s.transferEncoding}`);
  if (!s.done) problems.push("no data: [DONE]");
  if (s.bad && s.bad.length) problems.push(`events that are not data: chunks: ${JSON.stringify(s.bad.slice(0, 3))}`);
  if (s.rest) problems.push(`bytes after the last event: ${JSON.stringify(s.rest)}`);
  if (s.text !== want) problems.push(`streamed text ${JSON.stringify(s.text)} != the reply without stream ${JSON.stringify(want)}`);
  // Buffered by the proxy, the events would come in one or two reads at the end.
  if (!(s.reads >= 8 && s.contentBeforeDoneRead >= s.contentEvents / 2))
    problems.push(`not incremental: ${s.reads} reads, ${s.contentBeforeDoneRead} of ${s.contentEvents} content events before the read with [DONE]`);
  if (problems.length) { console.log(problems.join("; ")); process.exit(1); }
  console.log(`${s.eventCount} events in ${s.reads} reads; first content at ${s.firstContentT.toFixed(0)} ms, [DONE] at ${s.doneT.toFixed(0)} ms; ${s.contentBeforeDoneRead}/${s.contentEvents} content events before the last read`);
' "$stream" "$want" >"$dir/b.txt" || fail "the stream through nginx: $(cat "$dir/b.txt")"
echo "(b) stream through nginx: $(cat "$dir/b.txt") ($(since))"

# (c) Three clients send requests through nginx one after another; replica 1 gets SIGKILL.
mkdir -p "$dir/c"
client() {  # PHASE NUMBER: requests one after another until PHASE/stop exists
  local phase=$1 w=$2 n=0 p id t0 status
  while [ ! -e "$dir/$phase/stop" ]; do
    n=$((n + 1)); id=$phase$w-$n; p=$(((w + n) % 4))
    t0=$(date +%s.%N)
    status=$(chat "$np" "$dir/$phase/$id.json" $p 24 -H "X-Test-Id: $id")
    echo "$id $p $t0 $(date +%s.%N) $status" >>"$dir/$phase/log.$w"
  done
}
for w in 1 2 3; do client c $w & client_pids+=($!); done
sleep 1.5
kill_t=$(date +%s.%N)
kill -KILL "$pid1"
# Past fail_timeout (5 s): nginx tries the dead replica again with a live request, which it
# must pass on to replica 2.
sleep 7
touch "$dir/c/stop"
wait "${client_pids[@]}"
client_pids=()
for i in $(seq 100); do [ -f "$dir/r1.rc" ] && break; sleep 0.1; done
kill_result=$($check kill "$dir/c" "$kill_t" 1 "$dir/nginx/logs/access.log" "$p1" "$dir/refs.json")
node -e '
  const r = JSON.parse(process.argv[1]);
  console.log(`${r.sent} requests (${r.startedAfterKill} sent after the kill, ${r.afterGrace} from 1 s after it): ` +
              `${r.ok} answered 200, ${r.retried} of them passed on to the other replica by nginx; ` +
              `in flight on the killed replica: ${r.inFlightOnKilled}, of which ${r.failedInFlight.length} failed`);
  for (const f of r.failedInFlight) console.log(`  allowed: ${f}`);
  const problems = [...r.failedOther.map((f) => `failed: ${f}`), ...r.wrongContent.map((w) => `wrong reply: ${w}`)];
  if (r.afterGrace < 5) problems.push(`only ${r.afterGrace} requests were sent from 1 s after the kill on`);
  if (problems.length) { console.log(problems.join("\n")); process.exit(1); }
' "$kill_result" >"$dir/c.txt" || fail "after SIGKILL of replica 1: $(cat "$dir/c.txt")"
echo "(c) replica 1 killed: $(cat "$dir/c.txt") ($(since))"

# (d) A rolling restart: replica 1 starts again on its port; once nginx sends it requests again,
# replica 2 gets SIGTERM while the clients send requests and it generates a long reply. Every
# request must succeed (a draining replica answers 503, nginx passes the request on), the long
# reply included, and replica 2 must exit with status 0.
start_replica 1 "$p1"
replica_ready 1 "$p1"
pid1=$(cat "$dir/r1.pid")
for i in $(seq 40); do  # nginx leaves a failed replica out for fail_timeout (5 s)
  [ "$(served "$p1")" -gt 0 ] && break
  chat "$np" /dev/null 0 4 >/dev/null
  sleep 0.25
done
[ "$(served "$p1")" -gt 0 ] || fail "nginx sent no request to the restarted replica 1 in 10 s"
mkdir -p "$dir/d"
for w in 1 2 3; do client d $w & client_pids+=($!); done
sleep 0.5
# A long reply straight from replica 2, so that it is the one in flight there at SIGTERM.
( chat "$p2" "$dir/d/long.json" 1 2000 >"$dir/d/long.status"; date +%s.%N >"$dir/d/long.end" ) &
long=$!
sleep 0.3
term_t=$(date +%s.%N)
kill -TERM "$pid2"
for i in $(seq 1200); do [ -f "$dir/r2.rc" ] && break; sleep 0.1; done
[ -f "$dir/r2.rc" ] || fail "replica 2 still runs 120 s after SIGTERM"
stop_s=$(awk -v a="$term_t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
sleep 1
touch "$dir/d/stop"
wait "$long" "${client_pids[@]}"
client_pids=()
rc=$(cat "$dir/r2.rc")
[ "$rc" = 0 ] || fail "replica 2 exited with status $rc after SIGTERM (expected 0)"
status=$(cat "$dir/d/long.status")
[ "$status" = 200 ] || fail "the long request in flight on replica 2 at SIGTERM: HTTP $status: $(head -c 300 "$dir/d/long.json")"
long_tokens=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).usage.completion_tokens)' "$dir/d/long.json")
[ "$long_tokens" = 2000 ] || fail "the long reply in flight at SIGTERM has $long_tokens tokens, not the 2000 asked for"
long_after=$(awk -v a="$term_t" -v b="$(cat "$dir/d/long.end")" 'BEGIN { printf "%.2f", b - a }')
awk -v d="$long_after" 'BEGIN { exit !(d > 0) }' || fail "the long reply ended before SIGTERM: the drain was not tested"
# Every request of the clients: 200 with the right reply (no replica was killed: no failure is
# allowed).
drain_result=$($check kill "$dir/d" "$term_t" 0 "$dir/nginx/logs/access.log" none "$dir/refs.json" SIGTERM)
node -e '
  const r = JSON.parse(process.argv[1]);
  console.log(`${r.sent} requests (${r.startedAfterKill} sent after SIGTERM): ${r.ok} answered 200, ` +
              `${r.retried} passed on by nginx, ${r.retriedAfter503} of them after a 503 from the draining replica`);
  const problems = [...r.failedOther, ...r.failedInFlight].map((f) => `failed: ${f}`)
    .concat(r.wrongContent.map((w) => `wrong reply: ${w}`));
  if (problems.length) { console.log(problems.join("\n")); process.exit(1); }
' "$drain_result" >"$dir/d.txt" || fail "rolling restart: $(cat "$dir/d.txt")"
echo "(d) SIGTERM to replica 2: it finished the reply in flight (2000 tokens, ${long_after} s after SIGTERM) and exited 0 in ${stop_s} s; $(cat "$dir/d.txt") ($(since))"
echo "PASS: scale-out behind nginx ($(since))"
