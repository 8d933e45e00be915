#pragma once
// Milliseconds since this process started (as the kernel recorded it), so that "load N ms" in
// --verbose output counts everything a user waits for: dynamic linking, static initialisation,
// reading the package and creating the sessions.
namespace q3vl::cli {

// 0 if /proc is unavailable; resolution is the kernel's clock tick (usually 10 ms).
double ms_since_process_start();

}  // namespace q3vl::cli
