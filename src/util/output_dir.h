#pragma once
// A folder q3vl writes whole (a package, a make-tiny checkpoint, a --dump folder), written so that
// q3vl never deletes what it cannot prove it wrote and never shows a half-written folder as done:
//  - the content is written into a sibling staging folder OUT.partial and renamed onto OUT at the
//    end (an existing OUT is swapped out atomically and then removed);
//  - every folder q3vl creates carries a marker file, .q3vl-owned (tool, kind, staging or not);
//    an existing OUT is replaced only when it is empty or carries our marker of the same kind, and
//    a leftover OUT.partial is removed only when its marker says it is our unfinished staging folder;
//  - OUT may not be, or contain, an input folder, the working directory, or a parent of either;
//  - OUT.partial is locked (flock) from its creation to the final rename: of two processes writing
//    one OUT, the second fails at once ("another q3vl process is writing OUT"), and a staging folder
//    left by a killed process (Ctrl-C) is recognised as stale by its free lock and cleaned up.
// Creating the staging folder and committing happen under a short lock on the parent folder, so no
// process ever sees a staging folder that exists but is not yet locked and marked.
#include <filesystem>
#include <string>
#include <vector>

namespace q3vl {

inline constexpr const char* kOwnedMarker = ".q3vl-owned";

// A folder the command reads, never to be replaced: e.g. {checkpoint, "the checkpoint (--model)"}.
struct ProtectedFolder {
  std::filesystem::path path;
  std::string what;
};

struct OutputDirOptions {
  std::string kind;                      // what the folder holds: "package", "checkpoint", "dump"
  std::string option = "--out";          // the command-line option that named it, for messages
  bool replace = false;                  // an existing folder of ours may be replaced
  std::string force_option = "--force";  // the option that sets `replace` ("" when none), for messages
  std::vector<ProtectedFolder> inputs;   // besides the working directory, always protected
};

enum class WriteMode {
  Replace,  // a new folder replaces OUT (which is absent, empty, or ours and `replace` is set)
  Update,   // files are added to / replaced in an existing OUT of ours
};

// What a marker file says; `kind` is empty when the folder has no marker of ours.
struct OwnedMarker {
  std::string kind;
  bool staging = false;
};
OwnedMarker read_owned_marker(const std::filesystem::path& dir);
void write_owned_marker(const std::filesystem::path& dir, const std::string& kind, bool staging);

class OutputDir {
 public:
  // Resolves `requested` (absolute, normalized, trailing separators dropped, parent symlinks
  // resolved) and refuses a symlink, a file, the filesystem root and protected folders. Writes
  // nothing. Throws InvalidInput with a message naming the folder and what to do.
  OutputDir(const std::filesystem::path& requested, OutputDirOptions options);
  ~OutputDir();  // a staging folder that was not committed is removed
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& stage() const { return stage_; }

  // Throws InvalidInput unless `mode` may write path() now (checked again under the lock).
  void check(WriteMode mode) const;
  // Creates (or reclaims a stale) OUT.partial, marked and locked, and returns it. Creates
  // missing parent folders. Throws Error if another process is writing OUT.
  const std::filesystem::path& begin(WriteMode mode);
  // Replace mode: OUT becomes the staging folder's content; the old OUT, if any, is removed.
  void commit();
  // Update mode: moves every file of the staging folder into OUT, replacing files of the same
  // name. `last` is first removed from OUT and moved in last, so while the other files change,
  // OUT does not hold `last` (a manifest whose presence says the folder is complete).
  void merge_into(const std::string& last);

 private:
  void release_stage() noexcept;

  std::filesystem::path path_;
  std::filesystem::path stage_;
  OutputDirOptions options_;
  int stage_lock_ = -1;  // open descriptor of the staging folder, flock()ed
  bool committed_ = false;
};

}  // namespace q3vl
