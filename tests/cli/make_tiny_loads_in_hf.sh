#!/usr/bin/env bash
# Proves a `q3vl make-tiny` checkpoint loads and runs in Hugging Face transformers. Needs the
# reference chroot (../shared/refgen/setup.sh, root); skipped (77) where it is not built.
set -euo pipefail
q3vl=$1
src=$2
source "$src/tests/support/refgen_chroot.sh" "$src"  # sets $inroot, or skips
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$q3vl" make-tiny --preset tiny --out "$dir/tiny" --seed 5 --quiet
REFGEN_ROOT=$refgen_root "$inroot" -b "$src:/repo" -b "$dir:/work" -- python3 /repo/tools/golden/check_hf_load.py /work/tiny
