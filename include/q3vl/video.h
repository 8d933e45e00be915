#pragma once
// A video for a conversation turn: a file (decoded in-process with FFmpeg's libraries), frames
// already extracted to image files, or frames in memory. Nothing is decoded when a VideoClip is
// made; the turn that uses it samples frames exactly as Hugging Face's Qwen3-VL video processor
// does (`fps` frames per second of the clip, at least min_frames and at most max_frames, spread
// evenly) and decodes only those.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "q3vl/image.h"

namespace q3vl {

struct VideoClip {
  // A video file (MP4, MOV, MKV, WebM, AVI, ... with the codecs the system's FFmpeg decodes).
  // Throws InvalidInput now if it is not an existing regular file; its contents are read in the turn.
  static VideoClip from_file(std::filesystem::path file);
  // Frames extracted at `fps` frames per second, in order (image files: JPEG, PNG, WebP, BMP, GIF).
  // Throws InvalidInput for an empty list or a rate that is not positive and finite.
  static VideoClip from_frame_files(std::vector<std::filesystem::path> files, double fps);
  // The same for a folder: its image files sorted by name (other files are ignored).
  static VideoClip from_frame_folder(const std::filesystem::path& folder, double fps);
  // Frames already decoded, all of one size, at `fps` frames per second.
  static VideoClip from_frames(std::vector<RgbImage> frames, double fps);

  std::filesystem::path file;
  std::vector<std::filesystem::path> frame_files;
  std::vector<RgbImage> frames;
  double frames_fps = 0;  // for frame_files and frames
  std::string source;     // names the clip in messages
};

}  // namespace q3vl
