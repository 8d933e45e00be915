#include "util/cpu_cores.h"

#include <sched.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <thread>

namespace q3vl {
namespace {

std::vector<int> allowed_cpus() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(mask), &mask) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &mask)) cpus.push_back(cpu);
  }
  return cpus;
}

// The CPUs sharing `cpu`'s core, as sysfs lists them (older kernels name the file thread_siblings_list).
std::optional<std::string> sysfs_core_of(int cpu) {
  const std::string topology = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
  for (const char* name : {"core_cpus_list", "thread_siblings_list"}) {
    std::ifstream file(topology + name);
    std::string siblings;
    if (file && std::getline(file, siblings) && !siblings.empty()) return siblings;
  }
  return std::nullopt;
}

}  // namespace

int count_physical_cores(const std::vector<int>& cpus, const std::function<std::optional<std::string>(int)>& core_of) {
  std::set<std::string> cores;
  int unknown = 0;
  for (int cpu : cpus) {
    if (auto core = core_of(cpu)) {
      cores.insert(*core);
    } else {
      ++unknown;
    }
  }
  return std::max(1, static_cast<int>(cores.size()) + unknown);
}

int available_physical_cores() {
  const std::vector<int> cpus = allowed_cpus();
  if (cpus.empty()) return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return count_physical_cores(cpus, sysfs_core_of);
}

}  // namespace q3vl
