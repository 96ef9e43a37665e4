// daemon/internal/build_id.h — identifies the exact binary that is running.
//
// The CLI compares its build id with the daemon's; a difference means the
// daemon runs an older (or other) build and gets restarted. The GNU build-id
// note (a hash the linker computes over the whole output) changes on every
// relink with different code; without that note we fall back to the size and
// mtime of /proc/self/exe.
#pragma once

#include <string>

namespace locald::daemon::internal {

// Lower-case hex, never empty.
const std::string& build_id();

// The same id for the executable file at `path` (read from its ELF program
// headers, without running it): what build_id() returns inside a process
// running that file. "" when the file cannot be read.
std::string build_id_of_file(const std::string& path);

}  // namespace locald::daemon::internal
