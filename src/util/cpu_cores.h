#pragma once
// How many threads a session should run by default: one per physical core this process may use.
// ONNX Runtime's own default (intra-op threads 0) gave one thread on a 2-vCPU VM whose two CPUs are
// two cores, halving prefill and vision for every run that did not pass --threads.
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace q3vl {

// Physical cores among the CPUs in this process's affinity mask (CPUs that share a core, SMT
// siblings as sysfs lists them, count once; where the topology cannot be read, each allowed CPU
// counts), capped by a CPU quota of the process's cgroup (a container's --cpus): more threads than
// the quota only take turns being throttled. Never less than 1.
int available_physical_cores();

// The counting behind it, over any topology: `cpus` are the allowed CPU numbers; `core_of(cpu)`
// names the CPU's core (sysfs's core_cpus_list, e.g. "0,64") or is nullopt where unknown, in which
// case that CPU counts as a core of its own.
int count_physical_cores(const std::vector<int>& cpus, const std::function<std::optional<std::string>(int)>& core_of);

// The CPU quota of the process's cgroup and of every cgroup above it, in whole CPUs (rounded up),
// or nullopt where none is set. `mountinfo` and `cgroups` are the texts of /proc/self/mountinfo
// and /proc/self/cgroup; `read_file(path)` gives a file's text or nullopt. Reads cgroup v2's
// cpu.max and v1's cpu.cfs_quota_us / cpu.cfs_period_us.
std::optional<int> cgroup_cpu_limit(const std::string& mountinfo, const std::string& cgroups,
                                    const std::function<std::optional<std::string>(const std::string&)>& read_file);

}  // namespace q3vl
