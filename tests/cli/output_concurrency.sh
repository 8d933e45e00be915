#!/usr/bin/env bash
# Several q3vl processes writing one folder at once: exactly one writes it, the others exit 1 with a
# message naming the folder, and the folder left behind is complete (the package answers).
set -uo pipefail
q3vl=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
writers=4
busy_total=0

# race OUT ARGS...: $writers copies of `q3vl ARGS` released at the same instant. Sets `wins` and
# `busy`; every other exit must be 1 with a message about OUT.
race() {
  local out=$1; shift
  rm -f "$dir/go"
  local pids=() i rc
  for i in $(seq "$writers"); do
    (until [ -e "$dir/go" ]; do sleep 0.001; done; exec "$q3vl" "$@") >"$dir/$i.out" 2>"$dir/$i.err" &
    pids+=($!)
  done
  sleep 0.2
  touch "$dir/go"
  wins=0
  busy=0
  for i in $(seq "$writers"); do
    wait "${pids[$((i - 1))]}"
    rc=$?
    if [ "$rc" = 0 ]; then
      wins=$((wins + 1))
    elif [ "$rc" = 1 ] && grep -qF "another q3vl process is writing $out" "$dir/$i.err"; then
      busy=$((busy + 1))
    elif [ "$rc" = 1 ] && grep -qF "$out already holds a q3vl" "$dir/$i.err"; then
      :  # came after the winner had finished
    else
      fail "q3vl $* exited $rc: $(cat "$dir/$i.err")"
    fi
  done
  busy_total=$((busy_total + busy))
  [ -e "$out.partial" ] && fail "$out.partial left behind"
  return 0
}

complete_package() {
  for part in vision embedding text; do
    grep -q "\"$part\"" "$1/q3vl_package.json" || fail "$1: manifest lacks $part"
  done
  "$q3vl" run --model "$1" --prompt hi --max-new-tokens 2 --greedy >"$dir/run" 2>&1 || fail "$1 does not load: $(cat "$dir/run")"
}

"$q3vl" make-tiny --preset tiny --out "$dir/ck" --quiet || fail "make-tiny"
trials=0
for trial in 1 2 3 4; do
  rm -rf "$dir/pkg"
  race "$dir/pkg" build --model "$dir/ck" --out "$dir/pkg" --quiet
  [ "$wins" = 1 ] || fail "trial $trial: $wins of $writers concurrent builds succeeded"
  complete_package "$dir/pkg"
  rm -rf "$dir/tiny"
  race "$dir/tiny" make-tiny --preset tiny --out "$dir/tiny" --quiet
  [ "$wins" = 1 ] || fail "trial $trial: $wins of $writers concurrent make-tiny succeeded"
  "$q3vl" inspect --model "$dir/tiny" >/dev/null || fail "make-tiny race left a bad checkpoint"
  trials=$((trials + 1))
done
# The lock, not only the "already exists" check, decided some of these races.
[ "$busy_total" -gt 0 ] || fail "no writer ever met another one's lock: the races did not overlap"

# With --force every writer may win in turn, but never two at once: the result is one whole package.
race "$dir/pkg" build --model "$dir/ck" --out "$dir/pkg" --quiet --force
[ "$wins" -ge 1 ] || fail "no --force build succeeded"
complete_package "$dir/pkg"
# Part updates racing with whole builds.
race "$dir/pkg" build --model "$dir/ck" --out "$dir/pkg" --quiet --only text
[ "$wins" -ge 1 ] || fail "no update succeeded"
complete_package "$dir/pkg"
echo "ok: $trials trials of $writers writers, $busy_total refused by the lock"
