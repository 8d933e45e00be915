// The rules of util/output_dir.h, each against the folder it must protect or produce.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <map>

#include "q3vl/error.h"
#include "support/test_support.h"
#include "util/files.h"
#include "util/npy.h"
#include "util/output_dir.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;

OutputDirOptions package_options(bool replace = false, std::vector<ProtectedFolder> inputs = {}) {
  return {.kind = "package", .option = "--out", .replace = replace, .inputs = std::move(inputs)};
}

// Runs `make` and expects an InvalidInput whose message contains `needle`.
template <typename F>
void expect_refusal(F make, const std::string& needle) {
  try {
    make();
    ADD_FAILURE() << "accepted; expected a refusal mentioning: " << needle;
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// Every regular file under `dir` with its content, for "nothing was touched" checks.
std::map<std::string, std::string> contents(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    files[fs::relative(entry.path(), dir).string()] = entry.is_regular_file() ? read_text_file(entry.path()) : "<dir>";
  }
  return files;
}

TEST(OutputDir, TrailingSeparatorsAndDotsNameTheSameFolderAndASiblingStage) {
  test::TempDir dir;
  const fs::path root = fs::canonical(dir.path());
  for (const char* spelling : {"pkg", "pkg/", "pkg//", "./pkg/", "sub/../pkg"}) {
    const OutputDir out(root / spelling, package_options());
    EXPECT_EQ(out.path(), root / "pkg") << spelling;
    EXPECT_EQ(out.stage(), root / "pkg.partial") << spelling;
  }
}

TEST(OutputDir, RefusesTheRootTheWorkingDirectoryInputsAndTheirParents) {
  test::TempDir dir;
  const fs::path root = fs::canonical(dir.path());
  fs::create_directories(root / "ckpt" / "inner");
  const std::vector<ProtectedFolder> inputs = {{root / "ckpt", "the checkpoint (--model)"}};
  expect_refusal([&] { OutputDir("/", package_options(true)); }, "filesystem root");
  expect_refusal([&] { OutputDir(".", package_options(true)); }, "the working directory");
  expect_refusal([&] { OutputDir("..", package_options(true)); }, "the working directory");
  expect_refusal([&] { OutputDir(root / "ckpt", package_options(true, inputs)); }, "is the checkpoint");
  expect_refusal([&] { OutputDir(root / "ckpt/", package_options(true, inputs)); }, "is the checkpoint");
  expect_refusal([&] { OutputDir(root, package_options(true, inputs)); }, "contains the checkpoint");
  // A symlinked parent resolves to the same folder.
  fs::create_directory_symlink(root, root / "alias");
  expect_refusal([&] { OutputDir(root / "alias" / "ckpt", package_options(true, inputs)); }, "is the checkpoint");
  // A spelling with .. names the same folder.
  expect_refusal([&] { OutputDir(root / "ckpt" / ".." / "ckpt", package_options(true, inputs)); }, "is the checkpoint");
  fs::create_directories(root / "x.partial");
  expect_refusal([&] { OutputDir(root / "x", package_options(true, {{root / "x.partial", "the input"}})); },
                 "contains the input");
  // A new folder inside the checkpoint is allowed: nothing of the checkpoint is replaced.
  EXPECT_NO_THROW(OutputDir(root / "ckpt" / "pkg", package_options(true, inputs)));
}

TEST(OutputDir, RefusesSymlinksAndFiles) {
  test::TempDir dir;
  fs::create_directories(dir / "real");
  fs::create_directory_symlink(dir / "real", dir / "link");
  write_text_file(dir / "file", "data");
  expect_refusal([&] { OutputDir(dir / "link", package_options(true)); }, "symbolic link");
  expect_refusal([&] { OutputDir(dir / "link/", package_options(true)); }, "symbolic link");
  expect_refusal([&] { OutputDir(dir / "file", package_options(true)); }, "not a folder");
  EXPECT_EQ(read_text_file(dir / "file"), "data");
}

TEST(OutputDir, ReplacesOnlyEmptyFoldersOrOursOfTheSameKind) {
  test::TempDir dir;
  fs::create_directories(dir / "empty");
  fs::create_directories(dir / "user");
  write_text_file(dir / "user" / "notes.txt", "mine");
  fs::create_directories(dir / "ours");
  write_owned_marker(dir / "ours", "package", false);
  fs::create_directories(dir / "checkpoint");
  write_owned_marker(dir / "checkpoint", "checkpoint", false);
  EXPECT_NO_THROW(OutputDir(dir / "absent", package_options()).check(WriteMode::Replace));
  EXPECT_NO_THROW(OutputDir(dir / "empty", package_options()).check(WriteMode::Replace));
  expect_refusal([&] { OutputDir(dir / "user", package_options(true)).check(WriteMode::Replace); },
                 "not written by q3vl");
  expect_refusal([&] { OutputDir(dir / "user", package_options(true)).check(WriteMode::Update); },
                 "not written by q3vl");
  expect_refusal([&] { OutputDir(dir / "ours", package_options(false)).check(WriteMode::Replace); }, "--force");
  EXPECT_NO_THROW(OutputDir(dir / "ours", package_options(true)).check(WriteMode::Replace));
  EXPECT_NO_THROW(OutputDir(dir / "ours", package_options(false)).check(WriteMode::Update));
  expect_refusal([&] { OutputDir(dir / "checkpoint", package_options(true)).check(WriteMode::Replace); },
                 "holds a q3vl checkpoint, not a package");
  EXPECT_EQ(read_text_file(dir / "user" / "notes.txt"), "mine");
}

TEST(OutputDir, CommitSwapsTheNewFolderInAndRemovesTheOldOne) {
  test::TempDir dir;
  {
    OutputDir out(dir / "pkg", package_options());
    write_text_file(out.begin(WriteMode::Replace) / "a", "first");
    EXPECT_TRUE(read_owned_marker(out.stage()).staging);
    out.commit();
  }
  EXPECT_EQ(read_text_file(dir / "pkg" / "a"), "first");
  EXPECT_EQ(read_owned_marker(dir / "pkg").kind, "package");
  EXPECT_FALSE(read_owned_marker(dir / "pkg").staging);
  {
    OutputDir out(dir / "pkg", package_options(true));
    write_text_file(out.begin(WriteMode::Replace) / "b", "second");
    out.commit();
  }
  EXPECT_FALSE(fs::exists(dir / "pkg" / "a"));
  EXPECT_EQ(read_text_file(dir / "pkg" / "b"), "second");
  EXPECT_FALSE(fs::exists(dir / "pkg.partial"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);  // pkg only
}

TEST(OutputDir, AnAbandonedStageIsRemovedAndTheOldFolderKept) {
  test::TempDir dir;
  fs::create_directories(dir / "pkg");
  write_owned_marker(dir / "pkg", "package", false);
  write_text_file(dir / "pkg" / "a", "old");
  {
    OutputDir out(dir / "pkg", package_options(true));
    write_text_file(out.begin(WriteMode::Replace) / "a", "new, unfinished");
  }
  EXPECT_FALSE(fs::exists(dir / "pkg.partial"));
  EXPECT_EQ(read_text_file(dir / "pkg" / "a"), "old");
}

TEST(OutputDir, ASecondWriterOfTheSameFolderIsRefusedWhileTheFirstHoldsIt) {
  test::TempDir dir;
  OutputDir first(dir / "pkg", package_options());
  write_text_file(first.begin(WriteMode::Replace) / "a", "first");
  OutputDir second(dir / "pkg", package_options());
  try {
    second.begin(WriteMode::Replace);
    FAIL() << "two writers of one folder";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another q3vl process is writing"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_text_file(dir / "pkg.partial" / "a"), "first");  // the winner is undisturbed
  first.commit();
  EXPECT_EQ(read_text_file(dir / "pkg" / "a"), "first");
}

TEST(OutputDir, AStaleStageOfOursIsReclaimedOthersAreNeverRemoved) {
  test::TempDir dir;
  // Left by a killed writer: our staging marker, no lock.
  fs::create_directories(dir / "a.partial");
  write_owned_marker(dir / "a.partial", "package", true);
  write_text_file(dir / "a.partial" / "junk", "half");
  {
    OutputDir out(dir / "a", package_options());
    EXPECT_FALSE(fs::exists(out.begin(WriteMode::Replace) / "junk"));
    out.commit();
  }
  EXPECT_FALSE(fs::exists(dir / "a" / "junk"));
  // A user's folder, an empty one, and a finished q3vl folder that happens to have the name.
  fs::create_directories(dir / "b.partial");
  write_text_file(dir / "b.partial" / "notes.txt", "mine");
  fs::create_directories(dir / "c.partial");
  fs::create_directories(dir / "d.partial");
  write_owned_marker(dir / "d.partial", "checkpoint", false);
  write_text_file(dir / "e.partial", "a file");
  int refused = 0;
  for (const char* name : {"b", "c", "d", "e"}) {
    const auto before = contents(dir.path());
    OutputDir out(dir / name, package_options(true));
    expect_refusal([&] { out.begin(WriteMode::Replace); }, std::string(name) + ".partial exists");
    EXPECT_EQ(contents(dir.path()), before) << name;
    ++refused;
  }
  EXPECT_EQ(refused, 4);
}

TEST(OutputDir, MergeMovesTheManifestLast) {
  test::TempDir dir;
  fs::create_directories(dir / "pkg");
  write_owned_marker(dir / "pkg", "package", false);
  write_text_file(dir / "pkg" / "vision", "kept");
  write_text_file(dir / "pkg" / "text", "old");
  write_text_file(dir / "pkg" / "manifest", "old manifest");
  OutputDir out(dir / "pkg", package_options());
  const fs::path stage = out.begin(WriteMode::Update);
  write_text_file(stage / "text", "new");
  write_text_file(stage / "manifest", "new manifest");
  out.merge_into("manifest");
  EXPECT_EQ(read_text_file(dir / "pkg" / "vision"), "kept");
  EXPECT_EQ(read_text_file(dir / "pkg" / "text"), "new");
  EXPECT_EQ(read_text_file(dir / "pkg" / "manifest"), "new manifest");
  EXPECT_EQ(read_owned_marker(dir / "pkg").kind, "package");
  EXPECT_FALSE(read_owned_marker(dir / "pkg").staging);
  EXPECT_FALSE(fs::exists(stage));
}

TEST(OutputDir, UpdateRefusesAFolderThatIsNotOurs) {
  test::TempDir dir;
  fs::create_directories(dir / "pkg");
  write_text_file(dir / "pkg" / "manifest", "someone's");
  OutputDir out(dir / "pkg", package_options(true));
  expect_refusal([&] { out.begin(WriteMode::Update); }, "not written by q3vl");
  EXPECT_FALSE(fs::exists(dir / "pkg.partial"));
}

TEST(AtomicFile, AFailedRenameLeavesNoFileBehind) {
  test::TempDir dir;
  fs::create_directories(dir / "taken" / "child");
  EXPECT_THROW(write_text_file(dir / "taken", "text"), Error);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(Npy, RefusesDataThatDoesNotFillTheShape) {
  test::TempDir dir;
  const std::vector<float> values(5, 1.0f);
  EXPECT_THROW(write_npy(dir / "x.npy", std::span<const float>(values), {2, 3}), Error);
  EXPECT_FALSE(fs::exists(dir / "x.npy"));
}

// A write that hits the file size limit (what a full disk looks like to a writer) must be an
// error that names the file and leaves neither it nor a temporary file. Exits 0 when it is so.
[[noreturn]] void write_past_the_file_size_limit(const fs::path& dir) {
  std::signal(SIGXFSZ, SIG_IGN);  // the write fails with EFBIG instead of killing the process
  const rlimit limit{4096, 4096};
  ::setrlimit(RLIMIT_FSIZE, &limit);
  const std::vector<float> values(100000, 1.0f);
  int code = 3;
  try {
    write_npy(dir / "big.npy", std::span<const float>(values), {100000});
  } catch (const Error& e) {
    const bool named = std::string(e.what()).find("big.npy: File too large") != std::string::npos;
    const bool empty = fs::directory_iterator(dir) == fs::directory_iterator();
    code = named ? (empty ? 0 : 1) : 2;
  }
  std::exit(code);
}

// In a child process: the limit is per process.
TEST(AtomicFile, AFullDiskIsAnErrorAndLeavesNoFile) {
  test::TempDir dir;
  EXPECT_EXIT(write_past_the_file_size_limit(dir.path()), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace q3vl
