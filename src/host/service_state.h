// host/service_state.h — the observable state of one supervised service.
//
// Contract: plain data. The state names are exactly the strings of
// `locald status --json` (issue H1):
//   pending   created, never started (e.g. waiting for dependencies)
//   starting  process spawned (or waiting out a restart backoff, then
//             `next_start_at` is set and pid is 0), readiness not yet reached
//   ready     readiness probe passed (services with a probe or a port)
//   running   spawned and nothing to wait for (no probe, no port)
//   stopping  stop signal sent / leftovers being killed; not yet empty
//   stopped   stopped on request; nothing it started is left
//   exited    ended on its own and the restart policy says stay down
//   failed    could not start (exec failed), or gave up: max_restarts reached,
//             or a probe failed with restart = "no"
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "host/clock.h"

namespace locald::host {

enum class ServiceState { Pending, Starting, Ready, Running, Stopping, Stopped, Exited, Failed };

std::string_view to_string(ServiceState state);

// Whether the service counts as up for `depends_on = "started"` (Starting with
// a live pid, Ready, Running).
bool is_up(ServiceState state);

// How a process ended: exit code, or the signal that killed it.
struct ExitInfo {
    int exit_code = 0;  // for a signal: 128 + signal, like a shell
    int signal = 0;     // 0 when it exited normally
    bool failed() const { return exit_code != 0 || signal != 0; }
    std::string describe() const;  // "exited with code 3", "killed by SIGSEGV"
};

struct ServiceStatus {
    ServiceState state = ServiceState::Pending;
    pid_t pid = 0;                            // the main process; 0 when none
    int restarts = 0;                         // automatic restarts since the last manual start
    int consecutive_failures = 0;             // restarts since the last run that reached min_uptime
    std::optional<ExitInfo> last_exit;        // of the previous run
    std::optional<WallTime> started_at;       // of the current (or last) run
    std::optional<WallTime> ready_at;         // of the current run
    std::optional<SteadyTime> next_start_at;  // while waiting out a backoff
    // Why the service is in its state when that is not obvious: exec failure
    // ("exec `foo`: No such file or directory"), last probe failure, "gave up
    // after 10 restarts: exited with code 1". Empty otherwise.
    std::string reason;
};

}  // namespace locald::host
