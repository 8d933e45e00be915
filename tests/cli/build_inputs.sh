#!/usr/bin/env bash
# `build` refuses a checkpoint that lacks a file it needs besides the weights and the tokenizer
# (the chat template, generation_config.json, preprocessor_config.json,
# video_preprocessor_config.json) with one line naming the file and the flag that gives it; it never
# substitutes another model's (issue 15). A file given by its flag wins over the checkpoint's and is
# what the package holds. `inspect` reports the missing file as a note.
set -uo pipefail
q3vl=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# get FILE PERL_EXPR: prints the expression, over the parsed JSON file in $j.
get() { perl -MJSON::PP -0777 -ne '$j = JSON::PP->new->utf8->decode($_); binmode STDOUT, ":utf8"; print '"$2" "$1"; }
# edit FILE PERL_STATEMENT: rewrites the JSON file after the statement changed $j.
edit() {
  perl -MJSON::PP -0777 -i -ne '$j = JSON::PP->new->utf8->decode($_); '"$2"'; print JSON::PP->new->utf8->canonical->pretty->encode($j)' "$1"
}
# canonical FILE [KEY]: the file (or its top-level KEY) as canonical JSON, to compare contents.
canonical() {
  if [ $# = 2 ]; then get "$1" "JSON::PP->new->canonical->encode(\$j->{$2})"; else get "$1" 'JSON::PP->new->canonical->encode($j)'; fi
}

"$q3vl" make-tiny --preset tiny --out "$dir/ck" --seed 3 --quiet || fail "make-tiny"
for f in chat_template.json generation_config.json preprocessor_config.json video_preprocessor_config.json; do
  [ -f "$dir/ck/$f" ] || fail "make-tiny wrote no $f"
done

# copy NAME SETUP: a copy of the complete checkpoint at $dir/NAME, changed by SETUP (run inside it).
copy() {
  rm -rf "${dir:?}/$1"
  cp -r "$dir/ck" "$dir/$1"
  (cd "$dir/$1" && eval "$2") || fail "$1: setup"
}

# expect_missing NAME FILE FLAG: build of $dir/NAME exits 1 with one line naming FILE and FLAG and
# writes nothing; inspect succeeds and notes the flag.
expect_missing() {
  local name=$1 file=$2 flag=$3
  rm -rf "$dir/out" "$dir/out.partial"
  "$q3vl" build --model "$dir/$name" --out "$dir/out" --quiet >"$dir/stdout" 2>"$dir/err"
  local rc=$?
  [ "$rc" = 1 ] || fail "$name: build exited $rc, expected 1: $(cat "$dir/err")"
  [ "$(wc -l <"$dir/err")" = 1 ] || fail "$name: not a one-line error: $(cat "$dir/err")"
  grep -qF -- "$file" "$dir/err" || fail "$name: the error does not name $file: $(cat "$dir/err")"
  grep -qF -- "$flag FILE" "$dir/err" || fail "$name: the error does not name $flag: $(cat "$dir/err")"
  [ ! -e "$dir/out" ] && [ ! -e "$dir/out.partial" ] || fail "$name: a refused build wrote $dir/out"
  "$q3vl" inspect --model "$dir/$name" >"$dir/stdout" 2>"$dir/err" || fail "$name: inspect failed: $(cat "$dir/err")"
  grep -F -- "$flag" "$dir/stdout" | grep -qF -- "note:" || fail "$name: inspect has no note naming $flag: $(cat "$dir/stdout")"
}

# build_ok NAME ARGS...: builds $dir/NAME into a fresh $dir/out.
build_ok() {
  local name=$1; shift
  rm -rf "$dir/out" "$dir/out.partial"
  "$q3vl" build --model "$dir/$name" --out "$dir/out" --quiet "$@" 2>"$dir/err" || fail "$name: build $*: $(cat "$dir/err")"
}

# The files to give, each different from the checkpoint's so the package shows which was used.
cp "$dir/ck/generation_config.json" "$dir/given_generation.json"
edit "$dir/given_generation.json" '$j->{top_k} = 7'
cp "$dir/ck/preprocessor_config.json" "$dir/given_preprocessor.json"
edit "$dir/given_preprocessor.json" '$j->{image_mean} = [0.25, 0.25, 0.25]'
cp "$dir/ck/video_preprocessor_config.json" "$dir/given_video.json"
edit "$dir/given_video.json" '$j->{fps} = 3'
get "$dir/ck/chat_template.json" '$j->{chat_template}' >"$dir/given.jinja"
printf '{#- given -#}' >>"$dir/given.jinja"

# --- generation_config.json
copy no_generation 'rm generation_config.json'
expect_missing no_generation generation_config.json --generation-config
build_ok no_generation --generation-config "$dir/given_generation.json"
[ "$(canonical "$dir/out/q3vl_package.json" generation_config)" = "$(canonical "$dir/given_generation.json")" ] ||
  fail "the package's generation_config is not the given file"
[ "$(get "$dir/out/genai_config.json" '$j->{search}{top_k}')" = 7 ] || fail "genai_config.json search.top_k is not the given 7"
# Given, it wins over the checkpoint's.
build_ok ck --generation-config "$dir/given_generation.json"
[ "$(get "$dir/out/q3vl_package.json" '$j->{generation_config}{top_k}')" = 7 ] ||
  fail "--generation-config did not replace the checkpoint's file"

# --- preprocessor_config.json
copy no_preprocessor 'rm preprocessor_config.json'
expect_missing no_preprocessor preprocessor_config.json --preprocessor-config
build_ok no_preprocessor --preprocessor-config "$dir/given_preprocessor.json"
[ "$(canonical "$dir/out/q3vl_package.json" preprocessor_config)" = "$(canonical "$dir/given_preprocessor.json")" ] ||
  fail "the package's preprocessor_config is not the given file"
get "$dir/out/processor_config.json" 'JSON::PP->new->canonical->encode($j)' | grep -qF '"mean":[0.25,0.25,0.25]' ||
  fail "processor_config.json does not normalize with the given mean"

# --- video_preprocessor_config.json (HF may fall back to preprocessor_config.json; q3vl asks)
copy no_video 'rm video_preprocessor_config.json'
expect_missing no_video video_preprocessor_config.json --video-preprocessor-config
build_ok no_video --video-preprocessor-config "$dir/given_video.json"
[ "$(canonical "$dir/out/q3vl_package.json" video_preprocessor_config)" = "$(canonical "$dir/given_video.json")" ] ||
  fail "the package's video_preprocessor_config is not the given file"
build_ok ck --video-preprocessor-config "$dir/given_video.json"
[ "$(get "$dir/out/q3vl_package.json" '$j->{video_preprocessor_config}{fps}')" = 3 ] ||
  fail "--video-preprocessor-config did not replace the checkpoint's file"

# --- the chat template: none in chat_template.jinja, chat_template.json or tokenizer_config.json
copy no_template 'rm chat_template.json && edit tokenizer_config.json "delete \$j->{chat_template}"'
expect_missing no_template "chat template" --chat-template
build_ok no_template --chat-template "$dir/given.jinja"
[ "$(get "$dir/out/tokenizer_config.json" '$j->{chat_template}')" = "$(cat "$dir/given.jinja")" ] ||
  fail "the package's chat template is not the given .jinja file"
# A .json file gives its "chat_template" string; given, it wins over the checkpoint's.
perl -MJSON::PP -0777 -ne 'print JSON::PP->new->utf8->encode({chat_template => $_})' "$dir/given.jinja" >"$dir/given_template.json"
build_ok ck --chat-template "$dir/given_template.json"
[ "$(get "$dir/out/tokenizer_config.json" '$j->{chat_template}')" = "$(cat "$dir/given.jinja")" ] ||
  fail "--chat-template FILE.json did not replace the checkpoint's template"
# HF's order: chat_template.jinja, then chat_template.json, then tokenizer_config.json's.
copy with_jinja "cp '$dir/given.jinja' chat_template.jinja"
build_ok with_jinja
[ "$(get "$dir/out/tokenizer_config.json" '$j->{chat_template}')" = "$(cat "$dir/given.jinja")" ] ||
  fail "chat_template.jinja does not come before chat_template.json"
copy tokenizer_config_template "rm chat_template.json && edit tokenizer_config.json '\$j->{chat_template} .= \"{#- tc -#}\"'"
build_ok tokenizer_config_template
expected=$(get "$dir/tokenizer_config_template/tokenizer_config.json" '$j->{chat_template}')
[[ $expected == *"{#- tc -#}" ]] || fail "the test's tokenizer_config.json edit"
[ "$(get "$dir/out/tokenizer_config.json" '$j->{chat_template}')" = "$expected" ] ||
  fail "tokenizer_config.json's chat_template was not used"

# A given file that is not there is named with its flag.
rm -rf "$dir/out"
"$q3vl" build --model "$dir/ck" --out "$dir/out" --generation-config "$dir/none.json" --quiet 2>"$dir/err"
[ $? = 1 ] && grep -qF -- "$dir/none.json (--generation-config): no such file" "$dir/err" ||
  fail "a missing --generation-config file: $(cat "$dir/err")"

# The vision encoder's precision: int8 for a quantized package unless --vision-precision says
# otherwise, fp32 for an fp32 one (the package records what it holds).
vision_weights() { get "$dir/$1/q3vl_package.json" '$j->{parts}{vision}{linear}{weights}'; }
checked=0
for case in "fp32::fp32" "int4::int8" "int8::int8" "int4:fp32:fp32" "int4:int4:int4" "fp32:int8:int8"; do
  IFS=: read -r precision vision expected <<<"$case"
  rm -rf "$dir/p"
  "$q3vl" build --model "$dir/ck" --out "$dir/p" --only vision --precision "$precision" ${vision:+--vision-precision "$vision"} --quiet ||
    fail "build --precision $precision ${vision:+--vision-precision $vision}"
  [ "$(vision_weights p)" = "$expected" ] ||
    fail "--precision $precision ${vision:+--vision-precision $vision}: vision weights $(vision_weights p), expected $expected"
  checked=$((checked + 1))
done
[ "$checked" = 6 ] || fail "checked $checked vision precision cases"
echo ok
