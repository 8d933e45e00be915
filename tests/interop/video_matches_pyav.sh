#!/usr/bin/env bash
# q3vl's video decoding against transformers' PyAV backend (PyAV 17 on the reference chroot's
# FFmpeg): frame counts, rates and RGB frames of clips covering the pixel formats, colour tags,
# ranges, interlacing and containers. Needs the reference chroot (../shared/refgen/setup.sh,
# root); skipped (77) where it is not built.
#   video_matches_pyav.sh MAKE_TEST_CLIP VIDEO_DUMP SOURCE_DIR
set -euo pipefail
make_clip=$1
dump=$2
src=$3
source "$src/tests/support/refgen_chroot.sh" "$src"  # sets $inroot, or skips
if ! "$inroot" -- python3 -c "import av" 2>/dev/null; then
  echo "PyAV not installed in the reference chroot: skipped"; exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
clip() { local name=$1; shift; "$make_clip" "$dir/$name" --frames 6 --size 176x144 "$@"; }
clip h264.mp4 --codec h264 --quality default
clip h264_bt709.mp4 --codec h264 --colorspace bt709
clip h264_bt601.mov --codec h264 --colorspace bt601
clip h264_full.mkv --codec h264 --full-range
clip h264_yuvj.mp4 --codec h264 --pix-fmt yuvj420p
clip h264_444.mp4 --codec h264 --pix-fmt yuv444p --colorspace bt709
clip h264_interlaced.mp4 --codec h264 --interlaced
clip mpeg4_interlaced.avi --codec mpeg4 --interlaced
clip hevc.mp4 --codec hevc
clip vp8.webm --codec vp8 --quality default
clip vp9_444.webm --codec vp9 --pix-fmt yuv444p
clip vp9_full_bt709.mkv --codec vp9 --colorspace bt709 --full-range
clip av1.mkv --codec av1
clip mjpeg.avi --codec mjpeg
clip mpeg4.avi --codec mpeg4
clip ffv1_422.mkv --codec ffv1 --pix-fmt yuv422p
clip ffv1_gray.mkv --codec ffv1 --pix-fmt gray
clip ffv1_bgr0.mkv --codec ffv1 --pix-fmt bgr0
clip utvideo_gbrp.avi --codec utvideo --pix-fmt gbrp
clip png_rgba.mov --codec png --pix-fmt rgba
clip raw_bgr24.avi --codec rawvideo
clip raw.y4m --codec rawvideo
clip h264rgb.mkv --codec h264rgb
clip h264_audio_first.mp4 --codec h264 --with-audio
"$make_clip" "$dir/ffv1_odd_width.mkv" --codec ffv1 --frames 4 --size 63x48
"$make_clip" "$dir/near_ffv1_odd_height.mkv" --codec ffv1 --frames 4 --size 64x47
clip near_h264_10bit.mkv --codec h264 --pix-fmt yuv420p10le
clip near_hevc_10bit.mp4 --codec hevc --pix-fmt yuv420p10le --colorspace bt709
for f in "$dir"/*; do "$dump" "$f" "$f"; done
"$inroot" -b "$src:/repo" -b "$dir:/clips" -- python3 /repo/tools/golden/check_video_pyav.py /clips
