#include "util/cpu_cores.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <set>
#include <sstream>
#include <thread>

#include "util/files.h"

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

// A file's text, or nullopt where it cannot be read (no such file: not every kernel has them).
std::optional<std::string> file_text(const std::string& path) {
  try {
    return read_text_file(path);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The CPUs sharing `cpu`'s core, as sysfs lists them (older kernels name the file thread_siblings_list).
std::optional<std::string> sysfs_core_of(int cpu) {
  const std::string topology = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
  for (const char* name : {"core_cpus_list", "thread_siblings_list"}) {
    const auto text = file_text(topology + name);
    if (!text) continue;
    const std::string siblings = text->substr(0, text->find('\n'));
    if (!siblings.empty()) return siblings;
  }
  return std::nullopt;
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  return {std::istream_iterator<std::string>(in), std::istream_iterator<std::string>()};
}

bool has_option(const std::string& comma_list, const std::string& option) {
  std::istringstream in(comma_list);
  for (std::string item; std::getline(in, item, ',');) {
    if (item == option) return true;
  }
  return false;
}

struct CgroupMount {
  std::string root;         // the cgroup path mounted there (not "/" outside a cgroup namespace)
  std::string mount_point;  // where it is mounted
};

// The mount of cgroup v2 (v1 = false) or of v1's cpu controller, from mountinfo's lines:
// "ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS".
std::optional<CgroupMount> cgroup_mount(const std::string& mountinfo, bool v1) {
  std::istringstream lines(mountinfo);
  for (std::string line; std::getline(lines, line);) {
    const std::vector<std::string> w = words(line);
    const auto dash = std::find(w.begin(), w.end(), "-");
    if (w.size() < 5 || dash == w.end() || std::distance(dash, w.end()) < 2) continue;
    const std::string& type = *(dash + 1);
    const bool match = v1 ? type == "cgroup" && std::distance(dash, w.end()) >= 4 && has_option(*(dash + 3), "cpu") : type == "cgroup2";
    if (match) return CgroupMount{w[3], w[4]};
  }
  return std::nullopt;
}

// The process's cgroup path for v2 ("0::PATH") or for v1's cpu controller ("N:...cpu...:PATH").
std::optional<std::string> cgroup_path(const std::string& cgroups, bool v1) {
  std::istringstream lines(cgroups);
  for (std::string line; std::getline(lines, line);) {
    const std::size_t first = line.find(':'), second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1), path = line.substr(second + 1);
    if (v1 ? has_option(controllers, "cpu") : line.substr(0, first) == "0" && controllers.empty()) return path;
  }
  return std::nullopt;
}

std::optional<double> number(const std::string& text) {
  try {
    std::size_t used = 0;
    const double value = std::stod(text, &used);
    if (used == 0 || !std::isfinite(value)) return std::nullopt;
    return value;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// One cgroup folder's quota in CPUs, or nullopt where it sets none ("max", -1) or cannot be read.
std::optional<double> folder_quota(const std::string& folder, bool v1,
                                   const std::function<std::optional<std::string>(const std::string&)>& read_file) {
  std::optional<double> quota, period;
  if (v1) {
    const auto q = read_file(folder + "/cpu.cfs_quota_us"), p = read_file(folder + "/cpu.cfs_period_us");
    if (q && p) quota = number(*q), period = number(*p);
  } else if (const auto max = read_file(folder + "/cpu.max")) {
    const std::vector<std::string> w = words(*max);  // "QUOTA PERIOD" or "max PERIOD"
    if (w.size() == 2 && w[0] != "max") quota = number(w[0]), period = number(w[1]);
  }
  if (!quota || !period || *quota <= 0 || *period <= 0) return std::nullopt;
  return *quota / *period;
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

std::optional<int> cgroup_cpu_limit(const std::string& mountinfo, const std::string& cgroups,
                                    const std::function<std::optional<std::string>(const std::string&)>& read_file) {
  std::optional<double> limit;
  for (const bool v1 : {false, true}) {
    const auto mount = cgroup_mount(mountinfo, v1);
    auto path = cgroup_path(cgroups, v1);
    if (!mount || !path) continue;
    // Outside a cgroup namespace the mount's root is part of the process's path.
    if (mount->root != "/" && path->starts_with(mount->root)) path = path->substr(mount->root.size());
    // The process's folder, then each one above it up to the mount point.
    for (std::string relative = *path;;) {
      while (relative.size() > 1 && relative.back() == '/') relative.pop_back();
      const std::string folder = mount->mount_point + (relative == "/" ? "" : relative);
      if (const auto quota = folder_quota(folder, v1, read_file)) limit = std::min(limit.value_or(*quota), *quota);
      const std::size_t slash = relative.rfind('/');
      if (relative.empty() || relative == "/" || slash == std::string::npos) break;
      relative = slash == 0 ? "/" : relative.substr(0, slash);
    }
  }
  if (!limit) return std::nullopt;
  // Within int whatever the files say (a quota no machine has means no limit in practice).
  constexpr double kMostCpus = 1 << 20;
  return std::max(1, static_cast<int>(std::ceil(std::min(*limit, kMostCpus) - 1e-9)));
}

int available_physical_cores() {
  const std::vector<int> cpus = allowed_cpus();
  int cores = cpus.empty() ? static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) : count_physical_cores(cpus, sysfs_core_of);
  const auto mountinfo = file_text("/proc/self/mountinfo"), cgroups = file_text("/proc/self/cgroup");
  if (mountinfo && cgroups) {
    if (const auto limit = cgroup_cpu_limit(*mountinfo, *cgroups, file_text)) cores = std::min(cores, *limit);
  }
  return std::max(1, cores);
}

}  // namespace q3vl
