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

// Files of a fake /sys/fs/cgroup: path -> text.
std::function<std::optional<std::string>(const std::string&)> files(std::map<std::string, std::string> texts) {
  return [texts = std::move(texts)](const std::string& path) -> std::optional<std::string> {
    const auto it = texts.find(path);
    if (it == texts.end()) return std::nullopt;
    return it->second;
  };
}

const char* const kV2Mounts = "29 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
const char* const kV1Mounts =
    "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
    "32 30 0:29 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n";

TEST(CpuCores, CgroupV2QuotaRoundsUpToWholeCpus) {
  // docker run --cpus=2.5: cpu.max "250000 100000".
  EXPECT_EQ(cgroup_cpu_limit(kV2Mounts, "0::/\n", files({{"/sys/fs/cgroup/cpu.max", "250000 100000\n"}})), 3);
  EXPECT_EQ(cgroup_cpu_limit(kV2Mounts, "0::/\n", files({{"/sys/fs/cgroup/cpu.max", "200000 100000\n"}})), 2);
  EXPECT_EQ(cgroup_cpu_limit(kV2Mounts, "0::/\n", files({{"/sys/fs/cgroup/cpu.max", "50000 100000\n"}})), 1);
}

TEST(CpuCores, CgroupV2WithoutQuotaLimitsNothing) {
  EXPECT_EQ(cgroup_cpu_limit(kV2Mounts, "0::/\n", files({{"/sys/fs/cgroup/cpu.max", "max 100000\n"}})), std::nullopt);
  EXPECT_EQ(cgroup_cpu_limit(kV2Mounts, "0::/\n", files({})), std::nullopt);
  EXPECT_EQ(cgroup_cpu_limit("", "0::/\n", files({{"/sys/fs/cgroup/cpu.max", "100000 100000\n"}})), std::nullopt);  // not mounted
  EXPECT_EQ(cgroup_cpu_limit(kV2Mounts, "0::/\n", files({{"/sys/fs/cgroup/cpu.max", "lots 100000\n"}})), std::nullopt);
  EXPECT_EQ(cgroup_cpu_limit(kV2Mounts, "0::/\n", files({{"/sys/fs/cgroup/cpu.max", "\n"}})), std::nullopt);
  EXPECT_EQ(cgroup_cpu_limit(kV2Mounts, "0::/\n", files({{"/sys/fs/cgroup/cpu.max", "-5 100000\n"}})), std::nullopt);
  EXPECT_EQ(cgroup_cpu_limit(kV2Mounts, "0::/\n", files({{"/sys/fs/cgroup/cpu.max", "100000 0\n"}})), std::nullopt);
}

TEST(CpuCores, CgroupQuotaBeyondAnyMachineStaysAnInt) {
  // A quota far past int's range (a converted double past INT_MAX would be undefined) is capped.
  const auto limit = cgroup_cpu_limit(kV2Mounts, "0::/\n", files({{"/sys/fs/cgroup/cpu.max", "1e300 1\n"}}));
  ASSERT_TRUE(limit.has_value());
  EXPECT_EQ(*limit, 1 << 20);
}

TEST(CpuCores, CgroupV2TakesTheSmallestQuotaOnThePath) {
  // A service's slice allows 4 CPUs, the service itself 1.5; an unlimited leaf below them.
  const auto tree = files({{"/sys/fs/cgroup/system.slice/cpu.max", "400000 100000"},
                           {"/sys/fs/cgroup/system.slice/q3vl.service/cpu.max", "150000 100000"},
                           {"/sys/fs/cgroup/system.slice/q3vl.service/leaf/cpu.max", "max 100000"}});
  EXPECT_EQ(cgroup_cpu_limit(kV2Mounts, "0::/system.slice/q3vl.service/leaf\n", tree), 2);
  EXPECT_EQ(cgroup_cpu_limit(kV2Mounts, "0::/system.slice\n", tree), 4);
}

TEST(CpuCores, CgroupV1CpuController) {
  const std::string cgroups = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n2:cpuset:/docker/abc\n0::/\n";
  EXPECT_EQ(cgroup_cpu_limit(kV1Mounts, cgroups,
                             files({{"/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n"},
                                    {"/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n"}})),
            3);
  EXPECT_EQ(cgroup_cpu_limit(kV1Mounts, cgroups,
                             files({{"/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n"},
                                    {"/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n"}})),
            std::nullopt);
}

TEST(CpuCores, CgroupMountedAtItsOwnPathInsideAContainer) {
  // Without a cgroup namespace the container sees its own cgroup mounted at the root, and its path
  // in /proc/self/cgroup still names it.
  const std::string mounts = "40 30 0:28 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
  EXPECT_EQ(cgroup_cpu_limit(mounts, "0::/docker/abc\n", files({{"/sys/fs/cgroup/cpu.max", "200000 100000"}})), 2);
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
