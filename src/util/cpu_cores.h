#pragma once
// How many physical cores this process may run on: the default thread count of every session.
// ONNX Runtime's own default (intra-op threads 0) gave one thread on a 2-vCPU VM whose two CPUs are
// two cores, halving prefill and vision for every run that did not pass --threads.
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace q3vl {

// Physical cores among the CPUs in this process's affinity mask: CPUs that share a core (SMT
// siblings, as sysfs lists them) count once. Where the topology cannot be read, each allowed CPU
// counts; never less than 1.
int available_physical_cores();

// The counting behind it, over any topology: `cpus` are the allowed CPU numbers; `core_of(cpu)`
// names the CPU's core (sysfs's core_cpus_list, e.g. "0,64") or is nullopt where unknown, in which
// case that CPU counts as a core of its own.
int count_physical_cores(const std::vector<int>& cpus, const std::function<std::optional<std::string>(int)>& core_of);

}  // namespace q3vl
