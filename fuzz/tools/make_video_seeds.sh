#!/usr/bin/env bash
# Writes the seed corpus of the video_decode fuzz target with make_test_clip (tiny deterministic
# clips: MJPEG/AVI, FFV1/Matroska, H.264/MP4, VP8/WebM, raw YUV4MPEG).
#   fuzz/tools/make_video_seeds.sh [BUILD_DIR]   (default: build)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
tool=${1:-$here/build}/tools/clip_writer/make_test_clip
out=$here/fuzz/corpus/video_decode
mkdir -p "$out"
"$tool" "$out/mjpeg.avi" --codec mjpeg --frames 3 --size 32x24
"$tool" "$out/ffv1.mkv" --codec ffv1 --frames 3 --size 32x24
"$tool" "$out/h264.mp4" --codec h264 --frames 4 --size 32x24 --quality default
"$tool" "$out/vp8.webm" --codec vp8 --frames 3 --size 32x24 --quality default
"$tool" "$out/raw.y4m" --codec rawvideo --frames 3 --size 16x16
