#!/usr/bin/env bash
# `cmake --install` gives a usable q3vl: the installed CLI runs, and a separate project finds the
# library with find_package(q3vl), builds against the public headers only, and gives the same
# greedy reply as the CLI. Usage: consumer_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cmake --install "$build" --prefix "$dir/prefix" >/dev/null
test -f "$dir/prefix/include/q3vl/q3vl.h"
# Public headers include only the standard library (<name>) and each other (q3vl/...).
foreign=$(cat "$dir"/prefix/include/q3vl/*.h | grep '#include' | grep -v '#include [<"]q3vl/' | grep -v '#include <[a-z_]*>' || true)
if [ -n "$foreign" ]; then
  echo "FAIL: installed headers include more than the standard library and q3vl/: $foreign"; exit 1
fi
# The runtime library does not need the exporter's protobuf/onnx.
if readelf -d "$dir"/prefix/lib/libq3vl.so | grep NEEDED | grep -E 'libprotobuf|libonnx[._]'; then
  echo "FAIL: libq3vl.so links the exporter's dependencies"; exit 1
fi
readelf -d "$dir"/prefix/lib/libq3vl.so | grep -q 'NEEDED.*libonnxruntime' || { echo "FAIL: libq3vl.so does not link ONNX Runtime?"; exit 1; }
q3vl=$dir/prefix/bin/q3vl
env -u LD_LIBRARY_PATH "$q3vl" make-tiny --preset tiny --out "$dir/ckpt" --seed 11 --quiet
env -u LD_LIBRARY_PATH "$q3vl" build --model "$dir/ckpt" --out "$dir/pkg" --quiet
cli_reply=$(env -u LD_LIBRARY_PATH "$q3vl" run --model "$dir/pkg" --prompt "hello there" --greedy --max-new-tokens 8)

cmake -S "$src/tests/install/consumer" -B "$dir/consumer-build" -DCMAKE_PREFIX_PATH="$dir/prefix" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$dir/consumer-build" >/dev/null
consumer_reply=$(env -u LD_LIBRARY_PATH "$dir/consumer-build/consumer" "$dir/pkg" "hello there")
if [ "$consumer_reply" != "$cli_reply" ]; then
  printf 'FAIL: the consumer replied %q, the CLI %q\n' "$consumer_reply" "$cli_reply"; exit 1
fi
echo "installed q3vl: CLI and find_package consumer agree (${#cli_reply} bytes of reply)"
