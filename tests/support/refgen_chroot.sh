# Sourced by tests that run Hugging Face's reference inside the chroot ../shared/refgen/setup.sh
# builds (root only). With SOURCE_DIR as $1, sets $inroot (the chroot's runner) or exits 77
# (skipped) where the chroot is not there.
refgen_root=${REFGEN_ROOT:-/opt/refroot}
inroot=""
for candidate in "$1/../shared/refgen/inroot.sh" "$1/shared/refgen/inroot.sh"; do
  [ -x "$candidate" ] && inroot=$candidate && break
done
if [ ! -f "$refgen_root/.refgen-versions" ] || [ -z "$inroot" ] || [ "$(id -u)" != 0 ]; then
  echo "reference chroot not available: skipped"; exit 77
fi
