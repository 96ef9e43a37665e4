// cli/cmd_launch.cc — `locald __launch SPEC.json`, the hidden internal mode.
//
// The daemon's supervisor execs this for `image =` services: a fresh,
// single-threaded process (the daemon itself never enters namespaces) that
// becomes the parent of the container's PID 1, forwards signals and exits
// with the container's status (128+N for a signal), so logs, PTYs, restarts
// and stop work exactly as for host services. `-` reads the spec from stdin.
// The daemon prefers the slim `locald-launch` executable (ns::launch_command),
// which runs the same ns::launch_main; this mode is its fallback.
#include "cli/commands_list.h"
#include "ns/launch_main.h"

namespace locald::cli {

const char kLaunchHelp[] =
    "usage: locald __launch SPEC.json|-\n"
    "\n"
    "Internal: runs one container described by a launcher spec (JSON) in the\n"
    "foreground and exits with its status. Used by the daemon for image services.\n";

int run_launch(std::span<const std::string> args) {
    // The same entry point as the slim `locald-launch` executable.
    return ns::launch_main(args);
}

}  // namespace locald::cli
