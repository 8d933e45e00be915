#include "util/output_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

#include "q3vl/error.h"
#include "util/files.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;

constexpr int kMarkerVersion = 1;
// Creating or committing a staging folder takes milliseconds; a parent lock held longer than this
// belongs to something stuck, and we say so instead of hanging.
constexpr auto kParentLockTimeout = std::chrono::seconds(60);

std::string system_error(const std::string& what, const fs::path& path) {
  return what + " " + path.string() + ": " + std::strerror(errno);
}

fs::path without_trailing_separators(const fs::path& path) {
  std::string text = path.string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return text;
}

// `ancestor` equals `path` or is one of its parents (both absolute and canonical).
bool is_same_or_ancestor(const fs::path& ancestor, const fs::path& path) {
  auto a = ancestor.begin();
  auto p = path.begin();
  for (; a != ancestor.end(); ++a, ++p) {
    if (a->empty()) continue;  // a trailing separator's empty element
    if (p == path.end() || *a != *p) return false;
  }
  return true;
}

// An open folder descriptor, closed (and so unlocked) on destruction.
class FolderHandle {
 public:
  explicit FolderHandle(const fs::path& dir) : fd_(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) {
    if (fd_ < 0) throw Error(system_error("cannot open folder", dir));
  }
  ~FolderHandle() {
    if (fd_ >= 0) ::close(fd_);
  }
  FolderHandle(FolderHandle&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FolderHandle(const FolderHandle&) = delete;
  FolderHandle& operator=(const FolderHandle&) = delete;
  bool try_lock() const {
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) return false;
      if (errno != EINTR) throw Error(std::string("cannot lock a folder: ") + std::strerror(errno));
    }
    return true;
  }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

FolderHandle lock_parent(const fs::path& parent) {
  FolderHandle handle(parent);
  const auto deadline = std::chrono::steady_clock::now() + kParentLockTimeout;
  while (!handle.try_lock()) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw Error("cannot lock " + parent.string() + ": another process has held it for over a minute");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return handle;
}

void remove_tree(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) throw Error("cannot remove " + path.string() + ": " + ec.message());
}

enum class Existing { Absent, Empty, Ours, OursOtherKind, Foreign };

}  // namespace

OwnedMarker read_owned_marker(const fs::path& dir) {
  const fs::path file = dir / kOwnedMarker;
  std::error_code ec;
  if (!fs::is_regular_file(fs::symlink_status(file, ec)) || fs::file_size(file, ec) > 4096 || ec) return {};
  try {
    const nlohmann::json marker = nlohmann::json::parse(read_text_file(file));
    if (!marker.is_object() || marker.value("tool", "") != "q3vl" || !marker.contains("kind") ||
        !marker["kind"].is_string()) {
      return {};
    }
    return {marker["kind"].get<std::string>(), marker.value("staging", false)};
  } catch (const std::exception&) {
    return {};  // unreadable or not JSON: not a marker of ours
  }
}

void write_owned_marker(const fs::path& dir, const std::string& kind, bool staging) {
  const nlohmann::json marker = {{"tool", "q3vl"}, {"kind", kind}, {"staging", staging}, {"version", kMarkerVersion}};
  write_text_file(dir / kOwnedMarker, marker.dump() + "\n");
}

OutputDir::OutputDir(const fs::path& requested, OutputDirOptions options)
    : options_(std::move(options)) {
  const std::string named = options_.option + " " + requested.string();
  if (requested.empty()) throw InvalidInput(options_.option + " is empty: name the folder to write");
  std::error_code ec;
  const fs::path lexical = without_trailing_separators(fs::absolute(requested, ec));
  if (ec) throw InvalidInput("cannot resolve " + named + ": " + ec.message());
  if (fs::is_symlink(fs::symlink_status(lexical, ec))) {
    throw InvalidInput(named + " is a symbolic link (to " + fs::read_symlink(lexical, ec).string() +
                       "): q3vl does not write through links; pass the folder itself or another path");
  }
  path_ = without_trailing_separators(fs::weakly_canonical(lexical, ec));
  if (ec) throw InvalidInput("cannot resolve " + named + ": " + ec.message());
  const std::string described = path_ == requested ? named : named + " (" + path_.string() + ")";
  if (path_ == path_.root_path() || !path_.has_filename()) {
    throw InvalidInput(described + " is the filesystem root: q3vl never replaces it; choose a new folder");
  }
  stage_ = path_.parent_path() / (path_.filename().string() + ".partial");
  const fs::file_status status = fs::symlink_status(path_, ec);
  if (fs::exists(status) && !fs::is_directory(status)) {
    throw InvalidInput(described + " exists and is not a folder: q3vl does not replace it; choose a new folder");
  }
  std::vector<ProtectedFolder> protect = options_.inputs;
  protect.push_back({fs::current_path(ec), "the working directory"});
  for (const ProtectedFolder& folder : protect) {
    if (folder.path.empty()) continue;
    const fs::path canonical = fs::weakly_canonical(fs::absolute(folder.path, ec), ec);
    if (ec) continue;  // cannot be compared; the marker rule still keeps it from being replaced
    if (is_same_or_ancestor(path_, canonical) || is_same_or_ancestor(stage_, canonical)) {
      const bool same = canonical == path_;
      throw InvalidInput(described + (same ? " is " : " contains ") + folder.what +
                         (same ? "" : " (" + canonical.string() + ")") + ": q3vl never replaces it; choose another " +
                         options_.option);
    }
  }
}

OutputDir::~OutputDir() { release_stage(); }

void OutputDir::release_stage() noexcept {
  if (stage_lock_ < 0) return;
  if (!committed_) {
    std::error_code ignored;
    fs::remove_all(stage_, ignored);  // ours: we made or reclaimed it and hold its lock
  }
  ::close(stage_lock_);
  stage_lock_ = -1;
}

void OutputDir::check(WriteMode mode) const {
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(path_, ec);
  const std::string named = options_.option + " " + path_.string();
  Existing existing = Existing::Absent;
  OwnedMarker marker;
  if (fs::is_symlink(status)) {
    throw InvalidInput(named + " is now a symbolic link: q3vl does not write through links");
  } else if (fs::exists(status)) {
    if (!fs::is_directory(status)) throw InvalidInput(named + " exists and is not a folder: q3vl does not replace it");
    marker = read_owned_marker(path_);
    if (fs::is_empty(path_, ec) && !ec) {
      existing = Existing::Empty;
    } else if (marker.kind.empty() || marker.staging) {
      existing = Existing::Foreign;
    } else {
      existing = marker.kind == options_.kind ? Existing::Ours : Existing::OursOtherKind;
    }
  }
  const std::string not_ours = named + " exists and was not written by q3vl (it has no " + kOwnedMarker +
                               " marker): q3vl will not ";
  const std::string other_kind = named + " holds a q3vl " + marker.kind + ", not a " + options_.kind +
                                 ": q3vl will not ";
  if (mode == WriteMode::Update) {
    if (existing == Existing::Ours) return;
    if (existing == Existing::OursOtherKind) throw InvalidInput(other_kind + "change it; choose another " + options_.option);
    throw InvalidInput(not_ours + "change it; write a whole new " + options_.kind + " into a new folder instead");
  }
  switch (existing) {
    case Existing::Absent:
    case Existing::Empty: return;
    case Existing::Ours:
      if (options_.replace) return;
      throw InvalidInput(named + " already holds a q3vl " + options_.kind + " (use " + options_.force_option +
                         " to replace it)");
    case Existing::OursOtherKind:
      throw InvalidInput(other_kind + "replace it; choose another " + options_.option);
    case Existing::Foreign:
      throw InvalidInput(not_ours + "replace it" + (options_.replace && !options_.force_option.empty() ? " even with " + options_.force_option : "") +
                         "; choose another " + options_.option + " or remove it by hand");
  }
}

const fs::path& OutputDir::begin(WriteMode mode) {
  if (stage_lock_ >= 0) throw Error("OutputDir::begin called twice for " + path_.string());
  const fs::path parent = path_.parent_path();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) throw Error("cannot create the folder " + parent.string() + " for " + options_.option + ": " + ec.message());
  const FolderHandle parent_lock = lock_parent(parent);
  check(mode);  // again: another process may have written OUT since the constructor looked
  const std::string busy = "another q3vl process is writing " + path_.string() + " (it holds " + stage_.string() +
                           "); wait for it to finish or choose another " + options_.option;
  struct stat st {};
  if (::lstat(stage_.c_str(), &st) != 0) {
    if (errno != ENOENT) throw Error(system_error("cannot inspect", stage_));
    if (::mkdir(stage_.c_str(), 0777) != 0) throw Error(system_error("cannot create", stage_));
    FolderHandle stage(stage_);
    if (!stage.try_lock()) throw Error(busy);
    stage_lock_ = stage.release();
  } else {
    const std::string foreign = stage_.string() + " exists and is not an unfinished q3vl folder (no " + kOwnedMarker +
                                " staging marker): q3vl will not remove it; remove it by hand or choose another " +
                                options_.option;
    if (!S_ISDIR(st.st_mode)) throw InvalidInput(foreign);
    FolderHandle stage(stage_);
    if (!stage.try_lock()) throw Error(busy);
    if (!read_owned_marker(stage_).staging) throw InvalidInput(foreign);
    // Our staging folder, unlocked: its writer died (Ctrl-C, kill, power loss). Reuse it, emptied.
    stage_lock_ = stage.release();
    for (const auto& entry : fs::directory_iterator(stage_)) {
      if (entry.path().filename() != kOwnedMarker) remove_tree(entry.path());
    }
  }
  write_owned_marker(stage_, options_.kind, true);
  return stage_;
}

void OutputDir::commit() {
  if (stage_lock_ < 0 || committed_) throw Error("OutputDir::commit without a staging folder for " + path_.string());
  const FolderHandle parent_lock = lock_parent(path_.parent_path());
  check(WriteMode::Replace);
  write_owned_marker(stage_, options_.kind, false);
  struct stat st {};
  if (::lstat(path_.c_str(), &st) != 0) {
    if (::rename(stage_.c_str(), path_.c_str()) != 0) throw Error(system_error("cannot rename " + stage_.string() + " to", path_));
  } else if (::renameat2(AT_FDCWD, stage_.c_str(), AT_FDCWD, path_.c_str(), RENAME_EXCHANGE) == 0) {
    // Atomic swap: readers of OUT see the old folder or the new one, never none. The old one now
    // sits under the staging name, still covered by the parent lock; `check` proved it ours or
    // empty. Marked as staging first, so a kill during its removal leaves a reclaimable stage.
    committed_ = true;
    write_owned_marker(stage_, options_.kind, true);
    remove_tree(stage_);
  } else if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) {
    remove_tree(path_);  // a filesystem without atomic exchange: remove, then rename
    if (::rename(stage_.c_str(), path_.c_str()) != 0) throw Error(system_error("cannot rename " + stage_.string() + " to", path_));
  } else {
    throw Error(system_error("cannot replace " + path_.string() + " with", stage_));
  }
  committed_ = true;
  release_stage();
}

void OutputDir::merge_into(const std::string& last) {
  if (stage_lock_ < 0 || committed_) throw Error("OutputDir::merge_into without a staging folder for " + path_.string());
  check(WriteMode::Update);
  if (::unlink((path_ / last).c_str()) != 0 && errno != ENOENT) throw Error(system_error("cannot remove", path_ / last));
  std::vector<fs::path> names;
  for (const auto& entry : fs::directory_iterator(stage_)) {
    const fs::path name = entry.path().filename();
    if (name != kOwnedMarker && name != last) names.push_back(name);
  }
  names.push_back(last);
  for (const fs::path& name : names) {
    if (::rename((stage_ / name).c_str(), (path_ / name).c_str()) != 0) {
      throw Error(system_error("cannot move " + (stage_ / name).string() + " to", path_ / name));
    }
  }
  release_stage();  // removes what is left: the staging marker
}

}  // namespace q3vl
