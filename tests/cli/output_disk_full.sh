#!/usr/bin/env bash
# A real full disk (a 1 MB tmpfs): every write error is exit 1 naming the file, nothing is left
# half written under a final name, and what was there before is intact. Needs mount (root);
# skipped (77) where it is not permitted.
set -uo pipefail
q3vl=$1
dir=$(mktemp -d)
disk=$dir/disk
mkdir "$disk"
cleanup() { umount "$disk" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
if ! mount -t tmpfs -o size=1m tmpfs "$disk" 2>/dev/null; then
  echo "cannot mount a tmpfs here: skipped"; exit 77
fi
fail() { echo "FAIL: $*"; exit 1; }
cases=0
disk_state() { find "$disk" -type f -printf '%p %i %s %T@\n' -o -printf '%p %y\n' | sort; }
expect_full() {  # expect_full NEEDLE ARGS...: exit 1, NEEDLE and "No space left" on stderr, disk unchanged
  local needle=$1; shift
  local before
  before=$(disk_state)
  "$q3vl" "$@" >"$dir/out" 2>"$dir/err"
  local rc=$?
  [ "$rc" = 1 ] || fail "q3vl $* exited $rc on a full disk: $(cat "$dir/err")"
  grep -qF -- "$needle" "$dir/err" || fail "q3vl $*: stderr does not name $needle: $(cat "$dir/err")"
  [ "$before" = "$(disk_state)" ] || fail "q3vl $* left files on the full disk"
  cases=$((cases + 1))
}

"$q3vl" make-tiny --preset tiny --out "$dir/ck" --quiet || fail "make-tiny"
"$q3vl" build --model "$dir/ck" --out "$dir/pkg" --quiet || fail "build"
expect_full "$disk/ck.partial/" make-tiny --preset tiny --out "$disk/ck" --quiet
expect_full "$disk/pkg.partial/" build --model "$dir/ck" --out "$disk/pkg" --quiet
# A first dump fits (logits: ~600 KB); a second one does not while the first exists: the first stays.
"$q3vl" run --model "$dir/pkg" --prompt hi --max-new-tokens 2 --greedy --dump "$disk/d" >/dev/null 2>&1 || fail "first dump"
expect_full "No space left on device" run --model "$dir/pkg" --prompt hello --max-new-tokens 2 --greedy --dump "$disk/d"
grep -q "No space left" "$dir/err" || fail "the dump error does not give the reason"
[ "$cases" = 3 ] || fail "ran $cases cases, expected 3"
echo "ok: $cases cases"
