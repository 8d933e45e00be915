#!/usr/bin/env bash
# Hostile command lines and runtime inputs (issue 9): every case exits with the code the README
# promises (0 ok, 1 error, 2 bad command line), names the culprit on stderr, never crashes, hangs
# or prints ONNX Runtime's coloured log lines. Usage: hostile_cli.sh Q3VL
set -uo pipefail
q3vl=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# ONNX Runtime's telemetry writes $TMPDIR/mat-debug-<pid>.log in every process; q3vl removes it
# (checked at the end). Its one reused session file, $TMPDIR/.ses, stays.
export TMPDIR=$dir/tmp
mkdir "$TMPDIR"
checks=0
fail() { echo "FAIL: $*"; exit 1; }

# expect CODE NEEDLE ARGS...: exit code CODE, NEEDLE on stderr (empty: anything), no ANSI escapes.
expect() {
  local code=$1 needle=$2; shift 2
  timeout 300 "$q3vl" "$@" >"$dir/out" 2>"$dir/err" <"${stdin:-/dev/null}"
  local rc=$?
  [ "$rc" = "$code" ] || fail "q3vl $(printf '%.200s' "$*") exited $rc, expected $code: $(head -c 2000 "$dir/err")"
  [ -z "$needle" ] || grep -q -- "$needle" "$dir/err" || fail "q3vl $(printf '%.200s' "$*"): stderr does not say '$needle': $(head -c 2000 "$dir/err")"
  if grep -q $'\033' "$dir/err"; then fail "q3vl $(printf '%.200s' "$*"): ANSI escape codes on stderr"; fi
  checks=$((checks + 1))
}

le32() { local v=$1; printf "\\x$(printf %02x $((v & 255)))\\x$(printf %02x $(((v >> 8) & 255)))\\x$(printf %02x $(((v >> 16) & 255)))\\x$(printf %02x $(((v >> 24) & 255)))"; }
make_bmp() {  # make_bmp WIDTH HEIGHT FILE: a grey 24-bit BMP
  local w=$1 h=$2 file=$3 row=$((($1 * 3 + 3) / 4 * 4))
  local size=$((row * h))
  { printf 'BM'; le32 $((54 + size)); le32 0; le32 54; le32 40; le32 "$w"; le32 "$h"; printf '\x01\x00\x18\x00'
    le32 0; le32 "$size"; le32 2835; le32 2835; le32 0; le32 0; head -c "$size" /dev/zero | tr '\0' '\200'; } >"$file"
}

# ---- bad option values: usage errors (exit 2) naming the option, before any file is read ----------
none=$dir/no-such-package
expect 2 "--max-new-tokens" run --model "$none" --prompt hi --max-new-tokens -1
expect 2 "--max-new-tokens" run --model "$none" --prompt hi --max-new-tokens 0
expect 2 "--context" run --model "$none" --prompt hi --context 0
expect 2 "--context" run --model "$none" --prompt hi --context -5
expect 2 "--temperature" run --model "$none" --prompt hi --temperature -1
expect 2 "--temperature" run --model "$none" --prompt hi --temperature nan
expect 2 "--temperature" run --model "$none" --prompt hi --temperature inf
expect 2 "--top-p" run --model "$none" --prompt hi --top-p 2
expect 2 "--top-p" run --model "$none" --prompt hi --top-p 0
expect 2 "--top-k" run --model "$none" --prompt hi --top-k -3
expect 2 "--min-p" run --model "$none" --prompt hi --min-p 5
expect 2 "--repetition-penalty" run --model "$none" --prompt hi --repetition-penalty 0
expect 2 "--seed" run --model "$none" --prompt hi --seed -1
expect 2 "--max-image-tokens" run --model "$none" --prompt hi --max-image-tokens 0
expect 2 "--max-image-tokens" run --model "$none" --prompt hi --max-image-tokens -1
expect 2 "--max-image-tokens" run --model "$none" --prompt hi --max-image-tokens 9223372036854775807
expect 2 "--min-image-tokens" run --model "$none" --prompt hi --min-image-tokens 100 --max-image-tokens 10
expect 2 "--max-vision-memory-mb" run --model "$none" --prompt hi --max-vision-memory-mb 0
expect 2 "--threads" run --model "$none" --prompt hi --threads 1000
expect 2 "--threads" run --model "$none" --prompt hi --threads 2147483647
expect 2 "--threads" run --model "$none" --prompt hi --threads -1
expect 2 "--prompt" run --model "$none"
expect 2 "--prompt" run --model "$none" --prompt hi --prompt-file "$dir/p"
expect 2 "--prompt" run --model "$none" --prompt ""
expect 2 "--prompt is not valid UTF-8: bad sequence at byte offset 3 (0xFF)" run --model "$none" --prompt $'abc\xffdef'
expect 2 "--system is not valid UTF-8: truncated sequence at byte offset 0 (0xC3)" run --model "$none" --prompt hi --system $'\xc3'
expect 2 "--temperature" chat --model "$none" --temperature 0
expect 2 "--context" chat --model "$none" --context abc
for option in "--precision int3" "--vision-precision x" "--only foo" "--block-size 0" "--block-size 48" \
              "--block-size 512" "--accuracy-level 99" "--accuracy-level -1" "--max-length -1" "--max-length 0"; do
  # shellcheck disable=SC2086
  expect 2 "${option%% *}" build --model "$none" --out "$dir/pkg-bad" $option
done
[ ! -e "$dir/pkg-bad" ] || fail "a refused build wrote its output folder"
expect 2 "--seed" make-tiny --out "$dir/tiny-bad" --seed -1
expect 2 "--preset" make-tiny --out "$dir/tiny-bad" --preset 13b
[ ! -e "$dir/tiny-bad" ] || fail "a refused make-tiny wrote its output folder"

# ---- a package to run --------------------------------------------------------------------------
"$q3vl" make-tiny --preset tiny --out "$dir/ckpt" --quiet || fail "make-tiny"
"$q3vl" build --model "$dir/ckpt" --out "$dir/pkg" --quiet || fail "build"
pkg=$dir/pkg
run=(run --model "$pkg" --greedy --max-new-tokens 3)

expect 1 "is not a q3vl package" run --model "$dir/ckpt" --prompt hi
expect 1 "is not a q3vl package" run --model "$none" --prompt hi
expect 0 "" "${run[@]}" --prompt hi
[ -s "$dir/out" ] || fail "no reply on stdout"

# Long prompts: ONNX Runtime's telemetry matches a recursive std::regex over the whole command line
# (/proc/self/cmdline); 50 KB used to overflow the stack. 120 KB is near Linux's 128 KB per argument.
long=$(head -c 61440 /dev/zero | tr '\0' 'a' | sed 's/aaaaa/word /g')
expect 0 "" "${run[@]}" --prompt "$long" --context 32768
huge=$(head -c 120000 /dev/zero | tr '\0' 'x')
expect 0 "" "${run[@]}" --prompt "$huge" --system "$huge" --context 65536
[ -s "$dir/out" ] || fail "no reply to a 120 KB prompt"
# Longer prompts come from a file; beyond the context: a clear error before any heavy work.
printf '%s' "$long" >"$dir/long.txt"
expect 0 "" "${run[@]}" --prompt-file "$dir/long.txt" --context 32768
head -c 1048576 /dev/zero | tr '\0' 'b' | sed 's/bbbbbbb/ words/g' >"$dir/mega.txt"
expect 1 "context overflow: the conversation is .* tokens, more than the context length of 8192 (raise it with --context" \
  "${run[@]}" --prompt-file "$dir/mega.txt"
stdin="$dir/long.txt" expect 0 "" "${run[@]}" --prompt-file - --context 32768
expect 1 "--prompt-file $dir: is a directory" "${run[@]}" --prompt-file "$dir"
expect 1 "--prompt-file /dev/zero: more than 64 MB" "${run[@]}" --prompt-file /dev/zero
expect 1 "--system-file $dir/none.txt: cannot open" "${run[@]}" --prompt hi --system-file "$dir/none.txt"
printf 'caf\xc3' >"$dir/bad-utf8.txt"
expect 1 "--prompt-file $dir/bad-utf8.txt is not valid UTF-8: truncated sequence at byte offset 3" \
  "${run[@]}" --prompt-file "$dir/bad-utf8.txt"
printf 'a\0b\0' >"$dir/nul.txt"
expect 0 "" "${run[@]}" --prompt-file "$dir/nul.txt"
# Special-token text is tokenized as the special token, as Hugging Face does; an image placeholder
# cannot stand in the text (HF's processor fails on it too).
expect 0 "" "${run[@]}" --prompt '<|im_start|>assistant<|im_end|><|endoftext|>'
expect 1 "the message text contains <|image_pad|>" "${run[@]}" --prompt 'look: <|image_pad|>'
expect 1 "the system prompt contains <|image_pad|>" "${run[@]}" --prompt hi --system '<|image_pad|>'
expect 0 "" "${run[@]}" --prompt hi --stop "$huge" --stop ""

# Threads beyond the cores: a warning, and it still runs.
cores=$(nproc)
expect 0 "warning: --threads $((cores + 1)) is more than the $cores cores" "${run[@]}" --prompt hi --threads $((cores + 1))

# ---- images ------------------------------------------------------------------------------------
make_bmp 1 1 "$dir/one.bmp"
make_bmp 64 48 "$dir/small.bmp"
make_bmp 3 100000 "$dir/tall.bmp"
make_bmp 4000 3000 "$dir/photo.bmp"
mkfifo "$dir/fifo"
expect 0 "" "${run[@]}" --prompt hi --image "$dir/one.bmp"
expect 1 "$dir: not a regular file" "${run[@]}" --prompt hi --image "$dir"
expect 1 "/dev/zero: not a regular file" "${run[@]}" --prompt hi --image /dev/zero
expect 1 "$dir/fifo: not a regular file" "${run[@]}" --prompt hi --image "$dir/fifo"
expect 1 "$dir/tall.bmp: image of 3x100000 pixels: the aspect ratio must be at most 200" "${run[@]}" --prompt hi --image "$dir/tall.bmp"
images=()
for _ in $(seq 20); do images+=(--image "$dir/one.bmp"); done
expect 0 "" "${run[@]}" --prompt "what are these?" "${images[@]}" --verbose
grep -q "image tokens $((20 * 64))" "$dir/err" || fail "20 images: $(cat "$dir/err")"
# The user's --max-image-tokens below the package minimum wins, and is said once.
expect 0 "below the package's minimum of 64 image tokens" "${run[@]}" --prompt hi --image "$dir/small.bmp" --max-image-tokens 4 --verbose
grep -q "image tokens 4 " "$dir/err" || fail "--max-image-tokens 4 not honoured: $(cat "$dir/err")"
[ "$(grep -c 'below the package' "$dir/err")" = 1 ] || fail "the note is not said exactly once"
expect 0 "image tokens 70 " "${run[@]}" --prompt hi --image "$dir/small.bmp" --verbose
# The fields benchmarks read from the --verbose line (anchors/llamacpp.sh compare among them).
grep -Eq "^load [0-9]+ ms \| image tokens 70 \| vision [0-9]+ ms \| vision load [0-9]+ ms \| prefill [0-9]+ tok in [0-9]+ ms \([0-9.]+ tok/s\)" \
  "$dir/err" || fail "--verbose line lacks load/vision/prefill fields: $(cat "$dir/err")"
# A 4000x3000 photo over a small vision memory budget: refused before it runs, with a hint.
expect 1 "$dir/photo.bmp (11750 tokens): the vision encoder would need about .* MB of memory, more than the 100 MB allowed.*--max-image-tokens" \
  "${run[@]}" --prompt hi --image "$dir/photo.bmp" --context 20000 --max-vision-memory-mb 100
Q3VL_MAX_VISION_MEMORY_MB=100 expect 1 "more than the 100 MB allowed" "${run[@]}" --prompt hi --image "$dir/photo.bmp" --context 20000
expect 1 "--image $dir/photo.bmp: the 2 images so far take 68 MB decoded, more than the 40 MB allowed" \
  "${run[@]}" --prompt hi --image "$dir/photo.bmp" --image "$dir/photo.bmp" --max-vision-memory-mb 40
Q3VL_MAX_VISION_MEMORY_MB=lots expect 1 "Q3VL_MAX_VISION_MEMORY_MB=lots" "${run[@]}" --prompt hi --image "$dir/photo.bmp" --context 20000

# ---- standard output that cannot be written ----------------------------------------------------
if [ -w /dev/full ]; then
  "$q3vl" "${run[@]}" --prompt hi >/dev/full 2>"$dir/err"; rc=$?
  [ $rc = 1 ] && grep -q "cannot write the reply to standard output: No space left on device" "$dir/err" || fail "run >/dev/full: $rc $(cat "$dir/err")"
  echo hi | "$q3vl" chat --model "$pkg" --greedy --max-new-tokens 3 >/dev/full 2>"$dir/err"; rc=$?
  [ $rc = 1 ] && grep -q "No space left on device" "$dir/err" || fail "chat >/dev/full: $rc $(cat "$dir/err")"
  "$q3vl" inspect --model "$dir/ckpt" >/dev/full 2>"$dir/err"; rc=$?
  [ $rc = 1 ] && grep -q "cannot write to standard output" "$dir/err" || fail "inspect >/dev/full: $rc $(cat "$dir/err")"
  checks=$((checks + 3))
fi
"$q3vl" "${run[@]}" --prompt hi >&- 2>"$dir/err"; rc=$?
[ $rc = 1 ] && grep -q "cannot write the reply to standard output" "$dir/err" || fail "run with stdout closed: $rc $(cat "$dir/err")"
checks=$((checks + 1))

# ---- chat input --------------------------------------------------------------------------------
printf 'hi\r\n/quit now\n/img x\n/unknown\n/image\n/image %s\n/image %s\nfirst\n//slash text\n/help\n/image %s\nsecond\n/reset\nthird' \
  "$dir/none.png" "$dir/tall.bmp" "$dir/one.bmp" >"$dir/chat.txt"
stdin="$dir/chat.txt" expect 0 "" chat --model "$pkg" --greedy --max-new-tokens 3 --verbose
err=$(cat "$dir/err")
grep -q "/quit takes no argument; commands: /image PATH, /video PATH, /reset, /quit, /help" <<<"$err" || fail "chat: /quit now: $err"
grep -q "unknown command /img; commands:" <<<"$err" || fail "chat: /img: $err"
grep -q "unknown command /unknown; commands:" <<<"$err" || fail "chat: /unknown: $err"
grep -q "/image needs a file" <<<"$err" || fail "chat: /image: $err"
grep -q "$dir/none.png: no such file" <<<"$err" || fail "chat: missing image: $err"
grep -q "$dir/tall.bmp: image of 3x100000 pixels" <<<"$err" || fail "chat: bad image: $err"
# Replies: hi, //slash text, second, third (the turn with the bad image failed and the chat went on).
[ "$(grep -c . "$dir/out")" = 4 ] || fail "chat: expected 4 replies: $(cat "$dir/out")"
[ "$(grep -c "image tokens 64 " <<<"$err")" = 1 ] || fail "chat: the good image was not used once: $err"
printf 'caf\xc3\nhi\n' >"$dir/chat-utf8.txt"
stdin="$dir/chat-utf8.txt" expect 0 "the message text is not valid UTF-8: truncated sequence at byte offset 3" chat --model "$pkg" --greedy --max-new-tokens 3
[ "$(grep -c . "$dir/out")" = 1 ] || fail "chat: the line after a bad one was not answered: $(cat "$dir/out")"
stdin=/dev/null expect 0 "" chat --model "$pkg"

leftovers=$(ls -A "$TMPDIR" | grep -vx '.ses')
[ -z "$leftovers" ] || fail "files left in TMPDIR: $leftovers"

expected=74
[ -w /dev/full ] && expected=77
[ "$checks" = "$expected" ] || fail "$checks checks ran, expected $expected"
echo "ok: $checks checks"
