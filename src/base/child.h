// base/child.h — a child process owned through a pidfd.
//
// Contract: `Child` holds {pid, pidfd}. All signalling and waiting go
// through the pidfd, so a recycled pid can never be hit. A Child that is
// dropped while it still owns an unreaped process SIGKILLs and reaps it:
// no orphans, no zombies. Move-only.
//
// spawn() forks (then pidfd_open) and runs a function in the child; in a
// multi-threaded parent that function must only make async-signal-safe
// calls before exec (prepare argv/env before spawning). Code that needs
// clone3 flags (namespaces) creates the process itself and hands it over
// with from_pidfd() or adopt().
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/unique_fd.h"

namespace locald::base {

class ExitStatus {
public:
    static ExitStatus exited(int code) { return ExitStatus(false, code); }
    static ExitStatus killed(int signal) { return ExitStatus(true, signal); }
    // From a waitpid() status word.
    static ExitStatus from_wait_status(int status);

    bool is_exited() const { return !m_signaled; }
    bool is_signaled() const { return m_signaled; }
    int code() const { return m_signaled ? -1 : m_value; }   // exit code
    int signal() const { return m_signaled ? m_value : 0; }  // terminating signal
    bool success() const { return !m_signaled && m_value == 0; }
    // Shell convention: the code, or 128 + signal.
    int shell_code() const { return m_signaled ? 128 + m_value : m_value; }
    // "exited with status 3" / "killed by signal 9 (SIGKILL)".
    std::string to_string() const;

    friend bool operator==(const ExitStatus&, const ExitStatus&) = default;

private:
    ExitStatus(bool signaled, int value) : m_signaled(signaled), m_value(value) {}
    bool m_signaled = false;
    int m_value = 0;
};

class Child {
public:
    Child() = default;  // owns nothing
    ~Child();
    Child(Child&& other) noexcept;
    Child& operator=(Child&& other) noexcept;
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    // fork(); the child runs `body` and _exit()s with its return value.
    static Result<Child> spawn(const std::function<int()>& body);
    // Takes ownership of a child created elsewhere (e.g. clone3 CLONE_PIDFD).
    static Child from_pidfd(pid_t pid, UniqueFd pidfd);
    // Takes ownership of our child `pid` (pidfd_open).
    static Result<Child> adopt(pid_t pid);

    bool valid() const { return m_pidfd.valid(); }
    explicit operator bool() const { return valid(); }
    pid_t pid() const { return m_pid; }
    int pidfd() const { return m_pidfd.get(); }  // readable once the process exited

    // pidfd_send_signal; a process that already exited (not yet reaped) is
    // not an error.
    Result<void> kill(int signal);
    // Blocks until the process exits and reaps it. Afterwards the Child is
    // empty (valid() == false).
    Result<ExitStatus> wait();
    // Reaps if exited: nullopt while it still runs.
    Result<std::optional<ExitStatus>> try_wait();
    // Gives up ownership: the process will not be killed or reaped by us.
    UniqueFd release();

private:
    Child(pid_t pid, UniqueFd pidfd) : m_pid(pid), m_pidfd(std::move(pidfd)) {}
    void kill_and_reap();

    pid_t m_pid = -1;
    UniqueFd m_pidfd;
};

}  // namespace locald::base
