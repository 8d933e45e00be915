// video_dump CLIP OUT_PREFIX: decodes every frame of CLIP with q3vl's VideoReader and writes
// OUT_PREFIX.json (what info() reports) and OUT_PREFIX.rgb (the frames' RGB bytes, in order), for
// tools/golden/check_video_pyav.py to compare with transformers' PyAV backend.
#include <cstdio>
#include <exception>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "media/video_decode.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: video_dump CLIP OUT_PREFIX\n");
    return 2;
  }
  try {
    q3vl::VideoReader reader{std::filesystem::path(argv[1])};
    const q3vl::VideoStreamInfo& info = reader.info();
    std::vector<std::int64_t> indices;
    for (std::int64_t i = 0; i < info.total_frames; ++i) indices.push_back(i);
    std::ofstream rgb(std::string(argv[2]) + ".rgb", std::ios::binary);
    std::int64_t frames = 0;
    reader.read_frames(indices, [&](std::int64_t, q3vl::RgbImage frame) {
      rgb.write(reinterpret_cast<const char*>(frame.pixels.data()), static_cast<std::streamsize>(frame.pixels.size()));
      ++frames;
    });
    const nlohmann::json report = {{"total_frames", info.total_frames}, {"frames_counted", info.frames_counted},
                                   {"fps", info.fps},                   {"width", info.width},
                                   {"height", info.height},             {"codec", info.codec},
                                   {"rotation_degrees", info.rotation_degrees}, {"frames", frames}};
    std::ofstream(std::string(argv[2]) + ".json") << report.dump() << "\n";
  } catch (const std::exception& error) {
    std::fprintf(stderr, "video_dump: %s\n", error.what());
    return 1;
  }
  return 0;
}
