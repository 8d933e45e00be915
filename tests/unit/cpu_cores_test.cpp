// The default thread count: physical cores among the CPUs this process may use, and the
// environment's thread pool built with that many threads when none is asked for.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <thread>

#include "ort/onnx_session.h"
#include "util/cpu_cores.h"

namespace q3vl {
namespace {

// A topology as sysfs would list it: each CPU's core siblings; CPUs not in the map are unknown.
std::function<std::optional<std::string>(int)> topology(std::map<int, std::string> siblings) {
  return [siblings = std::move(siblings)](int cpu) -> std::optional<std::string> {
    const auto it = siblings.find(cpu);
    if (it == siblings.end()) return std::nullopt;
    return it->second;
  };
}

TEST(CpuCores, SmtSiblingsCountOnce) {
  const auto two_way = topology({{0, "0,2"}, {1, "1,3"}, {2, "0,2"}, {3, "1,3"}});
  EXPECT_EQ(count_physical_cores({0, 1, 2, 3}, two_way), 2);
  EXPECT_EQ(count_physical_cores({0, 2}, two_way), 1);  // one core's two threads allowed
  EXPECT_EQ(count_physical_cores({0, 3}, two_way), 2);
}

TEST(CpuCores, OneThreadPerCoreCountsEveryCpu) {
  // The VM this project runs on: two vCPUs, each its own core.
  EXPECT_EQ(count_physical_cores({0, 1}, topology({{0, "0"}, {1, "1"}})), 2);
}

TEST(CpuCores, UnknownTopologyCountsEachAllowedCpu) {
  EXPECT_EQ(count_physical_cores({0, 1, 5}, topology({})), 3);
  EXPECT_EQ(count_physical_cores({0, 1, 2}, topology({{0, "0-1"}, {1, "0-1"}})), 2);  // one core, and one unknown
  EXPECT_EQ(count_physical_cores({}, topology({})), 1);
}

TEST(CpuCores, ThisMachineHasAtLeastOneAndNoMoreThanItsCpus) {
  const int cores = available_physical_cores();
  EXPECT_GE(cores, 1);
  EXPECT_LE(cores, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

std::size_t threads_of_this_process() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& task : std::filesystem::directory_iterator("/proc/self/task")) ++count;
  return count;
}

// Threads an environment starts beyond its pool: ONNX Runtime's first environment in a process
// leaves a thread of its own running. A one-thread pool starts no workers.
std::size_t threads_after_a_first_environment() {
  { OnnxEnvironment first(1); }
  return threads_of_this_process();
}

// ONNX Runtime's pool runs work on the caller's thread too, so it starts one thread fewer than its
// size. Its own default (threads 0 passed through) had started none on a 2-core VM.
TEST(CpuCores, DefaultEnvironmentStartsAThreadPerCore) {
  const std::size_t before = threads_after_a_first_environment();
  OnnxEnvironment environment;
  const std::size_t after = threads_of_this_process();
  EXPECT_EQ(after - before, static_cast<std::size_t>(available_physical_cores() - 1));
}

TEST(CpuCores, AskedThreadCountIsKept) {
  const std::size_t before = threads_after_a_first_environment();
  OnnxEnvironment environment(3);
  EXPECT_EQ(threads_of_this_process() - before, 2u);
}

}  // namespace
}  // namespace q3vl
