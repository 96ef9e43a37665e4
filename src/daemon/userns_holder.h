// daemon/userns_holder.h — the one user namespace the daemon's image services
// share (podman's rootless pause process).
//
// Contract: `path()` returns a path a launcher puts in spec.user_namespace,
// starting the holder on first use: `locald-launch --hold-userns` (or
// `locald __launch --hold-userns`; start() appends `--parent=<daemon pid>`,
// which the holder checks once its PR_SET_PDEATHSIG is armed), a direct
// child of the daemon that unshares
// a user namespace, has it mapped with base::container_mapping() (the ids
// images are unpacked with) and then only waits for EOF on a pipe only the
// daemon writes to (and has PR_SET_PDEATHSIG), so it ends with the daemon.
//
// The path is `/proc/<daemon pid>/fd/<N>`: the daemon opens the holder's
// namespace while the holder is its live, unreaped child (so the pid cannot
// have been reused) and keeps that fd. The path therefore names that exact
// namespace, not "whatever process has pid H now", and stays valid for the
// daemon's life: a spec.json written once is relaunched by every restart of
// its service. When the holder dies it is reaped here and the next `path()`
// starts a new one and dup3()s its namespace onto the same fd number, so the
// path never changes; the old namespace lives on while containers (or the
// fd, until replaced) use it — same mapping, so same ids.
//
// Runs on the event loop's thread; `path()` blocks until the holder reports
// (a few ms: two setuid helpers), at most kStartTimeout. Destroying it closes
// the pipe, kills and reaps the holder.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "base/child.h"
#include "base/error.h"
#include "base/event_loop.h"
#include "base/unique_fd.h"

namespace locald::daemon {

class UsernsHolder {
public:
    // `argv`: the holder's command line (holder_argv()). `start_timeout`
    // bounds a start, from spawn to `ready` or to its exit after a failure.
    UsernsHolder(base::EventLoop& loop, std::vector<std::string> argv,
                 std::chrono::milliseconds start_timeout = std::chrono::seconds(15));
    ~UsernsHolder();
    UsernsHolder(const UsernsHolder&) = delete;
    UsernsHolder& operator=(const UsernsHolder&) = delete;

    // The namespace path for spec.user_namespace; starts the holder when none
    // runs. `warnings` gets the holder's warnings (a single mapping) once.
    base::Result<std::string> path(std::vector<std::string>* warnings = nullptr);

    // The running holder's pid, or -1.
    pid_t pid() const { return m_child.valid() ? m_child.pid() : -1; }

private:
    base::Result<void> start(std::vector<std::string>* warnings);
    void on_exit(base::ExitStatus status);

    base::EventLoop& m_loop;
    std::vector<std::string> m_argv;
    std::chrono::milliseconds m_start_timeout;
    base::Child m_child;
    base::UniqueFd m_control;  // write end of the holder's stdin: EOF ends it
    base::UniqueFd m_ns;       // the namespace, at a fixed fd number
    base::EventLoop::WatchId m_exit_watch = 0;
};

// The holder's command line: `DIR/locald-launch --hold-userns` next to
// `locald`, else `locald __launch --hold-userns`.
std::vector<std::string> holder_argv();

}  // namespace locald::daemon
