#!/usr/bin/env bash
# The folders of src/ form one direction of data flow: a file includes headers only from its own
# folder, folders listed before it, and the public include/q3vl. libq3vl (the runtime) never
# includes the exporter's folders, so it needs none of its dependencies. Usage: layering_test.sh SRC
set -euo pipefail
src=$1/src
order=(util math kernels model text media package graph quant export ort engine server cli)
exporter=" graph quant export "
runtime_lib=" util math kernels model text media package ort engine "
index_of() { local i; for i in "${!order[@]}"; do [ "${order[$i]}" = "$1" ] && echo "$i" && return; done; echo -1; }

checked=0
failures=0
for folder in "$src"/*/; do
  name=$(basename "$folder")
  me=$(index_of "$name")
  if [ "$me" -lt 0 ]; then echo "FAIL: src/$name is not in the layering order of this test"; failures=$((failures + 1)); continue; fi
  while IFS= read -r line; do
    file=${line%%:*}
    target=$(sed -E 's/.*#include "([a-z0-9_]+)\/.*/\1/' <<<"$line")
    [ "$target" = q3vl ] && continue  # the public headers: standard C++ only
    checked=$((checked + 1))
    them=$(index_of "$target")
    if [ "$them" -lt 0 ] || [ "$them" -gt "$me" ]; then
      echo "FAIL: ${file#$1/} (src/$name) includes src/$target, which comes later in the data flow"; failures=$((failures + 1))
    elif [[ $runtime_lib == *" $name "* && $exporter == *" $target "* ]]; then
      echo "FAIL: ${file#$1/} is in libq3vl but includes the exporter's src/$target"; failures=$((failures + 1))
    fi
  done < <(grep -rHn '^#include "[a-z0-9_]*/' "$folder" || true)
done
# Public headers include only each other and the standard library.
if grep -hn '^#include' "$1"/include/q3vl/*.h | grep -v '#include [<"]q3vl/' | grep -v '#include <[a-z_]*>'; then
  echo "FAIL: include/q3vl headers include more than the standard library and q3vl/"; failures=$((failures + 1))
fi
echo "checked $checked includes across $(ls -d "$src"/*/ | wc -l) folders: $failures problems"
[ "$checked" -gt 100 ] || { echo "FAIL: too few includes found ($checked): is the pattern still right?"; exit 1; }
[ "$failures" -eq 0 ]
