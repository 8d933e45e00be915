// The three kinds of VideoClip as FrameSources: a video file (VideoReader), image files (decoded
// one by one, only the sampled ones), frames in memory.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <system_error>

#include "media/video_preprocess.h"
#include "q3vl/error.h"
#include "q3vl/video.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;

void check_rate(double fps, const std::string& what) {
  if (!(fps > 0) || !std::isfinite(fps) || fps > 1e6) {
    throw InvalidInput(what + ": the frame rate must be a positive number of frames per second, not " + std::to_string(fps));
  }
}

bool is_image_file_name(const fs::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* known : {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}) {
    if (extension == known) return true;
  }
  return false;
}

class FileSource final : public FrameSource {
 public:
  FileSource(const fs::path& file, const VideoLimits& limits) : reader_(file, limits) {
    const VideoStreamInfo& stream = reader_.info();
    info_ = {stream.total_frames, stream.fps, stream.width, stream.height};
  }
  const FrameSourceInfo& info() const override { return info_; }
  void read(std::span<const std::int64_t> indices, const std::function<void(std::int64_t, RgbImage)>& on_frame) override {
    reader_.read_frames(indices, on_frame);
  }

 private:
  VideoReader reader_;
  FrameSourceInfo info_;
};

// Image files: the first is decoded now for the clip's size (and kept for frame 0).
class FrameFilesSource final : public FrameSource {
 public:
  FrameFilesSource(std::vector<fs::path> files, double fps) : files_(std::move(files)) {
    first_ = decode_image_file(files_.front());
    info_ = {static_cast<std::int64_t>(files_.size()), fps, first_.width, first_.height};
  }
  const FrameSourceInfo& info() const override { return info_; }
  void read(std::span<const std::int64_t> indices, const std::function<void(std::int64_t, RgbImage)>& on_frame) override {
    for (const std::int64_t index : indices) {
      if (index < 0 || index >= info_.total_frames) {
        throw InvalidInput("frame " + std::to_string(index) + " of " + std::to_string(info_.total_frames) + " frame files");
      }
      on_frame(index, index == 0 ? std::move(first_) : decode_image_file(files_[static_cast<std::size_t>(index)]));
    }
  }

 private:
  std::vector<fs::path> files_;
  RgbImage first_;
  FrameSourceInfo info_;
};

class MemorySource final : public FrameSource {
 public:
  MemorySource(const std::vector<RgbImage>& frames, double fps) : frames_(frames) {
    info_ = {static_cast<std::int64_t>(frames.size()), fps, frames.front().width, frames.front().height};
  }
  const FrameSourceInfo& info() const override { return info_; }
  void read(std::span<const std::int64_t> indices, const std::function<void(std::int64_t, RgbImage)>& on_frame) override {
    for (const std::int64_t index : indices) {
      if (index < 0 || index >= info_.total_frames) {
        throw InvalidInput("frame " + std::to_string(index) + " of " + std::to_string(info_.total_frames) + " frames");
      }
      on_frame(index, frames_[static_cast<std::size_t>(index)]);
    }
  }

 private:
  const std::vector<RgbImage>& frames_;  // the VideoClip's, which outlives the turn
  FrameSourceInfo info_;
};

}  // namespace

VideoClip VideoClip::from_file(fs::path file) {
  std::error_code error;
  if (!fs::is_regular_file(file, error)) throw InvalidInput(file.string() + ": no such file (a video file is needed)");
  VideoClip clip;
  clip.source = file.string();
  clip.file = std::move(file);
  return clip;
}

VideoClip VideoClip::from_frame_files(std::vector<fs::path> files, double fps) {
  if (files.empty()) throw InvalidInput("a clip of frame files needs at least one file");
  VideoClip clip;
  clip.source = files.front().parent_path().string() + " (" + std::to_string(files.size()) + " frames)";
  check_rate(fps, clip.source);
  clip.frame_files = std::move(files);
  clip.frames_fps = fps;
  return clip;
}

VideoClip VideoClip::from_frame_folder(const fs::path& folder, double fps) {
  std::error_code error;
  if (!fs::is_directory(folder, error)) throw InvalidInput(folder.string() + ": not a folder of frames");
  std::vector<fs::path> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder, error)) {
    if (entry.is_regular_file(error) && is_image_file_name(entry.path())) files.push_back(entry.path());
  }
  if (error) throw InvalidInput(folder.string() + ": cannot list the folder (" + error.message() + ")");
  if (files.empty()) {
    throw InvalidInput(folder.string() + ": no image files (.jpg, .jpeg, .png, .webp, .bmp, .gif) in the folder");
  }
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  VideoClip clip = from_frame_files(std::move(files), fps);
  clip.source = folder.string();
  return clip;
}

VideoClip VideoClip::from_frames(std::vector<RgbImage> frames, double fps) {
  if (frames.empty()) throw InvalidInput("a clip of frames needs at least one frame");
  VideoClip clip;
  clip.source = frames.front().source.empty() ? "frames in memory" : frames.front().source;
  check_rate(fps, clip.source);
  clip.frames = std::move(frames);
  clip.frames_fps = fps;
  return clip;
}

std::unique_ptr<FrameSource> open_frame_source(const VideoClip& clip, const VideoLimits& limits) {
  if (!clip.file.empty()) return std::make_unique<FileSource>(clip.file, limits);
  if (!clip.frame_files.empty()) {
    check_rate(clip.frames_fps, clip.source);
    return std::make_unique<FrameFilesSource>(clip.frame_files, clip.frames_fps);
  }
  if (!clip.frames.empty()) {
    check_rate(clip.frames_fps, clip.source);
    return std::make_unique<MemorySource>(clip.frames, clip.frames_fps);
  }
  throw InvalidInput("an empty video clip (no file, frame files or frames)");
}

}  // namespace q3vl
