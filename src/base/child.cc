#include "base/child.h"

#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace locald::base {

namespace {

// Raw syscalls: glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++.
int pidfd_open(pid_t pid) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

int pidfd_send_signal(int pidfd, int signal) {
    return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

ExitStatus status_from_siginfo(const siginfo_t& info) {
    if (info.si_code == CLD_EXITED) {
        return ExitStatus::exited(info.si_status);
    }
    return ExitStatus::killed(info.si_status);
}

}  // namespace

ExitStatus ExitStatus::from_wait_status(int status) {
    if (WIFSIGNALED(status)) {
        return killed(WTERMSIG(status));
    }
    return exited(WEXITSTATUS(status));
}

std::string ExitStatus::to_string() const {
    if (!m_signaled) {
        return fmt::format("exited with status {}", m_value);
    }
    const char* abbrev = ::sigabbrev_np(m_value);
    if (abbrev == nullptr) {
        return fmt::format("killed by signal {}", m_value);
    }
    return fmt::format("killed by signal {} (SIG{})", m_value, abbrev);
}

Child::~Child() {
    kill_and_reap();
}

Child::Child(Child&& other) noexcept
    : m_pid(std::exchange(other.m_pid, -1)), m_pidfd(std::move(other.m_pidfd)) {}

Child& Child::operator=(Child&& other) noexcept {
    if (this != &other) {
        kill_and_reap();
        m_pid = std::exchange(other.m_pid, -1);
        m_pidfd = std::move(other.m_pidfd);
    }
    return *this;
}

Result<Child> Child::spawn(const std::function<int()>& body) {
    pid_t pid = ::fork();
    if (pid < 0) {
        return errno_error("forking");
    }
    if (pid == 0) {
        ::_exit(body());
    }
    int pidfd = pidfd_open(pid);
    if (pidfd < 0) {
        Error error = errno_error("opening a pidfd for child {}", pid);
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        return error;
    }
    return Child(pid, UniqueFd(pidfd));
}

Child Child::from_pidfd(pid_t pid, UniqueFd pidfd) {
    return Child(pid, std::move(pidfd));
}

Result<Child> Child::adopt(pid_t pid) {
    int pidfd = pidfd_open(pid);
    if (pidfd < 0) {
        return errno_error("opening a pidfd for process {}", pid);
    }
    return Child(pid, UniqueFd(pidfd));
}

Result<void> Child::kill(int signal) {
    if (!valid()) {
        return failed_precondition("signalling a child that is not running");
    }
    if (pidfd_send_signal(m_pidfd.get(), signal) != 0) {
        // ESRCH: it exited and awaits reaping; the caller's intent is met.
        if (errno == ESRCH) {
            return ok();
        }
        return errno_error("sending signal {} to process {}", signal, m_pid);
    }
    return ok();
}

Result<ExitStatus> Child::wait() {
    if (!valid()) {
        return failed_precondition("waiting for a child that is not running");
    }
    siginfo_t info;
    ::memset(&info, 0, sizeof info);
    while (::waitid(P_PIDFD, static_cast<id_t>(m_pidfd.get()), &info, WEXITED) != 0) {
        if (errno != EINTR) {
            return errno_error("waiting for process {}", m_pid);
        }
    }
    m_pidfd.reset();
    m_pid = -1;
    return status_from_siginfo(info);
}

Result<std::optional<ExitStatus>> Child::try_wait() {
    if (!valid()) {
        return failed_precondition("waiting for a child that is not running");
    }
    siginfo_t info;
    ::memset(&info, 0, sizeof info);
    while (::waitid(P_PIDFD, static_cast<id_t>(m_pidfd.get()), &info, WEXITED | WNOHANG) != 0) {
        if (errno != EINTR) {
            return errno_error("waiting for process {}", m_pid);
        }
    }
    if (info.si_pid == 0) {
        return std::optional<ExitStatus>();
    }
    m_pidfd.reset();
    m_pid = -1;
    return std::optional<ExitStatus>(status_from_siginfo(info));
}

UniqueFd Child::release() {
    m_pid = -1;
    return std::move(m_pidfd);
}

void Child::kill_and_reap() {
    if (!valid()) {
        return;
    }
    pidfd_send_signal(m_pidfd.get(), SIGKILL);
    siginfo_t info;
    while (::waitid(P_PIDFD, static_cast<id_t>(m_pidfd.get()), &info, WEXITED) != 0 &&
           errno == EINTR) {
    }
    m_pidfd.reset();
    m_pid = -1;
}

}  // namespace locald::base
