// cli/ipc_client.h — how a CLI command reaches the daemon.
//
// Contract: `connect_daemon()` returns a connected client after the `hello`
// handshake. When no daemon listens it starts one (`locald daemon`, detached:
// double fork + setsid, stdin /dev/null, stdout/stderr appended to
// `<state>/daemon.log`) and waits for its socket (bounded). When the running
// daemon is another build (build id or protocol differ) it asks it to shut
// down with `restart` (services stop, their desired state is kept), waits for
// its lock to be released and starts this build's daemon, which restores them.
#pragma once

#include <span>

#include <string>
#include <vector>

#include "base/error.h"
#include "base/json.h"
#include "base/unique_fd.h"
#include "daemon/client.h"
#include "daemon/daemon.h"

namespace locald::cli {

base::Result<daemon::DaemonPaths> daemon_paths();

// With `autostart` false, Unavailable when no daemon runs.
base::Result<daemon::Client> connect_daemon(bool autostart = true);

// A pidfd of the running daemon (from its pid file), or an invalid fd. Open
// it before asking the daemon to exit, so the pid cannot be reused meanwhile.
base::UniqueFd open_daemon_pidfd(const daemon::DaemonPaths& paths);

// Waits (bounded) until no daemon holds the lock of `paths` and, given its
// pidfd, until that process has exited too (its lock is released while it is
// still in exit).
base::Result<void> wait_for_daemon_exit(const daemon::DaemonPaths& paths,
                                        const base::UniqueFd& pidfd = base::UniqueFd());

// Sends `method` and shows the daemon's per-service events with a Progress
// (unless `quiet`). Returns the exit code: 0, 1 when a service failed, or the
// error's code. `result` receives the final result when not null.
int call_with_progress(daemon::Client& client, std::string_view method, const base::Json& params,
                       base::Json* result = nullptr);

// Runs a `logs` call (params as the daemon takes them) and prints its lines;
// with "follow", Ctrl-C ends it with status 0. (cmd_logs.cc)
int print_logs(daemon::Client& client, const base::Json& params,
               const std::vector<std::string>& qualified, bool colour);

// The process environment as a JSON object (what `up` captures).
base::Json environment_json();

// The current directory (absolute, symlinks resolved).
std::string current_dir();

// `locald start|stop|restart [SERVICE…]`: the same request shape for all
// three (names resolved by the daemon against the cwd's project), with
// progress shown like `up`.
int run_service_names_command(std::string_view method, std::span<const std::string> args);

// Absolute, symlinks resolved; NotFound when it does not exist.
base::Result<std::string> absolute_dir(const std::string& path);

}  // namespace locald::cli
