// daemon/daemon.h — `locald daemon`: the long-running supervisor process.
//
// Contract:
//   - One daemon per LOCALD_HOME (per user without it): `<run>/daemon.lock` is
//     held with flock for the daemon's whole life; a second daemon exits with
//     AlreadyExists. The run and state dirs are 0700 (base::ensure_private_dir);
//     the socket `<run>/daemon.sock` is 0600 and peers must have our uid.
//   - `<run>/daemon.pid` holds "PID BUILD_ID" while the daemon serves.
//   - The daemon is a child subreaper (PR_SET_CHILD_SUBREAPER) so daemonising
//     grandchildren of services stay in its subtree and can be ended.
//   - On start it recovers (ServiceManager::recover): leftovers of a daemon that
//     died are ended, desired-up projects come back with their ports.
//   - SIGTERM/SIGINT stop every service (dependents first) and exit, keeping the
//     desired state for the next daemon; the `shutdown` request does the same
//     and, unless `restart` is set, marks every project down.
// Depends on base, config, host.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "base/paths.h"

namespace locald::daemon {

struct DaemonPaths {
    std::string run_dir;
    std::string state_dir;
    std::string socket;    // <run>/daemon.sock
    std::string lock;      // <run>/daemon.lock
    std::string pid_file;  // <run>/daemon.pid
    std::string log_file;  // <state>/daemon.log (where an auto-started daemon writes)
    std::string state_file;
    std::string logs_dir;  // <state>/logs

    static DaemonPaths from(const base::Paths& paths);
};

// Runs the daemon until it is told to stop. Returns the process exit code;
// an error that ends it is logged (4 when another daemon holds `paths`).
int run_daemon(const DaemonPaths& paths);
// The same, with the error returned for a caller that reports it itself
// (`locald daemon` in a terminal). AlreadyExists: another daemon runs.
base::Result<int> serve_daemon(const DaemonPaths& paths);

// The name of the daemon-only executable (base, config, host, daemon): built
// next to `locald` so the long-running process maps none of the registry,
// unpacking and container libraries (docs/architecture.md, "Two executables").
inline constexpr char kDaemonExecutableName[] = "locald-daemon";

// How the CLI starts the daemon: `locald-daemon` from the directory of the
// running executable when it is there and executable, else the running
// executable itself as `locald daemon` (a lone `locald` works as before).
struct DaemonCommand {
    std::string path;
    std::vector<std::string> argv;
    std::string build_id;  // of `path`: what the daemon's `hello` will report
};
DaemonCommand daemon_command();

// The full `locald` executable, for the daemon to run its helper modes: the
// running executable, or `locald` next to it when this is `locald-daemon`.
std::string locald_executable();

}  // namespace locald::daemon
