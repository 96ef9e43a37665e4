// host/pty.h — starting a process under its own pseudo-terminal.
//
// Contract: `spawn_in_pty` opens a PTY pair, forks, and in the child: setsid()
// (new session and process group, the child is their leader), TIOCSCTTY on the
// slave, slave dup2'd to 0/1/2, window size set, default signal dispositions
// and an empty signal mask, every other fd closed, chdir(cwd), optionally
// joins a cgroup (writes its pid to `cgroup_procs_path`), then execve with
// exactly `plan.env` (+ TERM when absent). argv[0] is resolved with the PATH of
// `plan.env` before forking; "command not found" is an error without a fork.
// A failure in the child after fork (chdir, cgroup, execve) is sent to the
// parent over a CLOEXEC pipe with its real errno, so the caller gets
// e.g. "exec `/x/y`: Permission denied" synchronously — never a hang.
// The returned master is non-blocking and CLOEXEC; the pidfd is CLOEXEC.
// Depends on base only.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/error.h"
#include "base/unique_fd.h"
#include "host/exec_plan.h"

namespace locald::host {

struct PtyChild {
    pid_t pid = 0;          // session, process group and PTY foreground leader
    base::UniqueFd pidfd;   // pidfd_open(pid); the caller reaps via waitid(P_PIDFD)
    base::UniqueFd master;  // the PTY master (read output, write input)
};

struct SpawnOptions {
    // When set, the child writes its own pid here before exec (cgroup.procs of
    // the service's cgroup), so nothing it starts can escape the cgroup.
    std::string cgroup_procs_path;
    // A cgroup2 directory fd (O_PATH is enough): the child is created in that
    // cgroup by clone3(CLONE_INTO_CGROUP), which costs nothing, whereas a
    // process moving itself through cgroup.procs waits for the kernel's
    // cgroup_threadgroup_rwsem (7–15 ms per spawn measured here, serialising
    // a 20-service start). -1 = none; when clone3 refuses (old kernel, v1),
    // the child writes `cgroup_procs_path` as before.
    int cgroup_dir_fd = -1;
    // PR_SET_PDEATHSIG for the main process (0 = none). Off by default: the
    // PTY hangup (SIGHUP) and the next daemon's leftover sweep end services
    // of a dead daemon; a signal tied to the forking *thread* is a footgun.
    int parent_death_signal = 0;
};

base::Result<PtyChild> spawn_in_pty(const ExecPlan& plan, const SpawnOptions& options = {});

// Resolves argv0 like execvp would, but with `path_env` (the plan's PATH; a
// missing PATH means "/usr/local/bin:/usr/bin:/bin") and relative to `cwd`.
// NotFound "command not found: `x`", PermissionDenied when only non-executable
// matches exist.
base::Result<std::string> resolve_command(const std::string& argv0, const std::string* path_env,
                                          const std::string& cwd);

// TIOCSWINSZ on the master; the kernel sends SIGWINCH to the foreground group.
base::Result<void> set_window_size(int master_fd, PtySize size);

// Writes input to the master (as if typed). Non-blocking: returns the number of
// bytes accepted (the PTY's input queue may be full).
base::Result<size_t> write_input(int master_fd, std::string_view bytes);

// Reaps `pid` if it exited (non-blocking). nullopt while still running.
// Uses waitid(P_PIDFD) when `pidfd` >= 0, else waitpid(pid).
struct WaitResult {
    int exit_code = 0;
    int signal = 0;
};
base::Result<std::optional<WaitResult>> try_reap(pid_t pid, int pidfd);

}  // namespace locald::host
