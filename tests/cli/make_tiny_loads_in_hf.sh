#!/usr/bin/env bash
# Proves a `q3vl make-tiny` checkpoint loads and runs in Hugging Face transformers. Needs the
# reference chroot (../shared/refgen/setup.sh, root); skipped (77) where it is not built.
set -euo pipefail
q3vl=$1
src=$2
root=${REFGEN_ROOT:-/opt/refroot}
inroot=""
for candidate in "$src/../shared/refgen/inroot.sh" "$src/shared/refgen/inroot.sh"; do
  [ -x "$candidate" ] && inroot=$candidate && break
done
if [ ! -f "$root/.refgen-versions" ] || [ -z "$inroot" ] || [ "$(id -u)" != 0 ]; then
  echo "reference chroot not available: skipped"; exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$q3vl" make-tiny --preset tiny --out "$dir/tiny" --seed 5 --quiet
REFGEN_ROOT=$root "$inroot" -b "$src:/repo" -b "$dir:/work" -- python3 /repo/tools/golden/check_hf_load.py /work/tiny
