#include "host/pty.h"

#include <fcntl.h>
#include <linux/sched.h>  // clone_args, CLONE_INTO_CGROUP
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstring>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace locald::host {
namespace {

// What the child failed to do, sent with errno over the CLOEXEC pipe.
enum class ChildStage : int { Setsid = 1, Ctty, Dup, Cgroup, Chdir, Exec };

struct ChildFailure {
    int stage;
    int err;
};

std::string_view stage_text(ChildStage stage) {
    switch (stage) {
        case ChildStage::Setsid:
            return "setsid";
        case ChildStage::Ctty:
            return "making the PTY the controlling terminal";
        case ChildStage::Dup:
            return "connecting the PTY to stdio";
        case ChildStage::Cgroup:
            return "joining the service cgroup";
        case ChildStage::Chdir:
            return "changing to the working directory";
        case ChildStage::Exec:
            return "exec";
    }
    return "?";
}

bool is_executable_file(const std::string& path, int* err) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        *err = errno;
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        *err = EACCES;
        return false;
    }
    if (::access(path.c_str(), X_OK) != 0) {
        *err = errno;
        return false;
    }
    return true;
}

std::string join_path(const std::string& dir, const std::string& name) {
    if (dir.empty()) {
        return name;
    }
    return dir.back() == '/' ? dir + name : dir + "/" + name;
}

// A relative path in the plan is relative to the service's cwd, not ours.
std::string anchor(const std::string& path, const std::string& cwd) {
    if (path.empty() || path[0] == '/' || cwd.empty()) {
        return path;
    }
    return join_path(cwd, path);
}

[[noreturn]] void child_fail(int fd, ChildStage stage) {
    ChildFailure failure{static_cast<int>(stage), errno};
    // Best effort: if this write fails the parent still sees the exit.
    ssize_t ignored = ::write(fd, &failure, sizeof failure);
    (void)ignored;
    _exit(127);
}

}  // namespace

base::Result<std::string> resolve_command(const std::string& argv0, const std::string* path_env,
                                          const std::string& cwd) {
    if (argv0.empty()) {
        return base::invalid_argument("empty command");
    }
    int err = 0;
    if (argv0.find('/') != std::string::npos) {
        std::string path = anchor(argv0, cwd);
        if (is_executable_file(path, &err)) {
            return path;
        }
        if (err == ENOENT || err == ENOTDIR) {
            return base::not_found("command not found: `{}`", argv0);
        }
        return base::Error::from_errno(err, fmt::format("cannot execute `{}`", argv0));
    }
    std::string_view search = "/usr/local/bin:/usr/bin:/bin";
    if (path_env) {
        search = std::string_view(*path_env).substr(5);  // after "PATH="
    }
    int denied = 0;
    size_t start = 0;
    while (start <= search.size()) {
        size_t end = search.find(':', start);
        if (end == std::string_view::npos) {
            end = search.size();
        }
        // An empty PATH entry means the current directory, as in execvp.
        std::string dir(search.substr(start, end - start));
        std::string candidate = anchor(join_path(dir.empty() ? "." : dir, argv0), cwd);
        if (is_executable_file(candidate, &err)) {
            return candidate;
        }
        if (err == EACCES) {
            denied = EACCES;
        }
        start = end + 1;
    }
    if (denied) {
        return base::Error::from_errno(denied, fmt::format("cannot execute `{}`", argv0));
    }
    return base::not_found("command not found: `{}`", argv0);
}

base::Result<void> set_window_size(int master_fd, PtySize size) {
    struct winsize ws {};
    ws.ws_row = size.rows;
    ws.ws_col = size.cols;
    if (::ioctl(master_fd, TIOCSWINSZ, &ws) != 0) {
        return base::errno_error("setting the PTY window size");
    }
    return base::ok();
}

base::Result<size_t> write_input(int master_fd, std::string_view bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(master_fd, bytes.data() + done, bytes.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                break;
            }
            return base::errno_error("writing to the PTY");
        }
        done += static_cast<size_t>(n);
    }
    return done;
}

base::Result<std::optional<WaitResult>> try_reap(pid_t pid, int pidfd) {
    siginfo_t info{};
    int rc;
    do {
        rc = pidfd >= 0 ? ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info,
                                   WEXITED | WNOHANG)
                        : ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        return base::errno_error("waiting for pid {}", pid);
    }
    if (info.si_pid == 0) {
        return std::optional<WaitResult>{};
    }
    WaitResult result;
    if (info.si_code == CLD_EXITED) {
        result.exit_code = info.si_status;
    } else {
        result.signal = info.si_status;
        result.exit_code = 128 + info.si_status;
    }
    return std::optional<WaitResult>(result);
}

base::Result<PtyChild> spawn_in_pty(const ExecPlan& plan, const SpawnOptions& options) {
    if (plan.argv.empty()) {
        return base::invalid_argument("empty argv");
    }
    // Everything the child needs is prepared here: after fork only
    // async-signal-safe calls are allowed (the daemon may have threads).
    std::string program = TRY(resolve_command(plan.argv[0], find_env(plan.env, "PATH"), plan.cwd));
    std::vector<std::string> env = plan.env;
    if (!find_env(env, "TERM")) {
        env.push_back("TERM=" + plan.default_term);
    }
    std::vector<char*> argv_ptrs;
    for (const auto& arg : plan.argv) {
        argv_ptrs.push_back(const_cast<char*>(arg.c_str()));
    }
    argv_ptrs.push_back(nullptr);
    std::vector<char*> env_ptrs;
    for (const auto& entry : env) {
        env_ptrs.push_back(const_cast<char*>(entry.c_str()));
    }
    env_ptrs.push_back(nullptr);

    base::UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!master) {
        return base::errno_error("opening a PTY");
    }
    if (::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0) {
        return base::errno_error("unlocking the PTY");
    }
    // TIOCGPTPEER opens the slave from the master without a path lookup.
    base::UniqueFd slave(::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!slave) {
        return base::errno_error("opening the PTY slave");
    }
    TRY(set_window_size(master.get(), plan.pty_size));

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        return base::errno_error("creating the exec status pipe");
    }
    base::UniqueFd status_read(pipe_fds[0]);
    base::UniqueFd status_write(pipe_fds[1]);

    const char* cgroup_procs =
        options.cgroup_procs_path.empty() ? nullptr : options.cgroup_procs_path.c_str();
    const char* cwd = plan.cwd.empty() ? nullptr : plan.cwd.c_str();
    const int parent_death_signal = options.parent_death_signal;
    const pid_t supervisor_pid = ::getpid();

    pid_t pid = -1;
    bool in_cgroup_at_birth = false;
    if (options.cgroup_dir_fd >= 0) {
        struct clone_args args {};
        args.flags = CLONE_INTO_CGROUP;
        args.exit_signal = SIGCHLD;
        args.cgroup = static_cast<uint64_t>(options.cgroup_dir_fd);
        pid = static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
        in_cgroup_at_birth = pid >= 0;
        // Otherwise (ENOSYS, EINVAL, EOPNOTSUPP…): fork and join below.
    }
    if (!in_cgroup_at_birth) {
        pid = ::fork();
    }
    if (pid < 0) {
        return base::errno_error("fork");
    }
    if (pid == 0) {
        // After a raw clone3 glibc's per-thread data still names the parent's
        // thread (no atfork handling): only plain syscall wrappers from here
        // on, which is all this child uses (no raise(), no malloc).
        if (in_cgroup_at_birth) {
            cgroup_procs = nullptr;
        }
        int fd = status_write.get();
        // The event loop blocks signals for its signalfd and may ignore
        // SIGPIPE: a service starts with a clean slate.
        sigset_t empty;
        sigemptyset(&empty);
        ::sigprocmask(SIG_SETMASK, &empty, nullptr);
        for (int sig = 1; sig < NSIG; ++sig) {
            if (sig != SIGKILL && sig != SIGSTOP) {
                ::signal(sig, SIG_DFL);
            }
        }
        if (::setsid() < 0) {
            child_fail(fd, ChildStage::Setsid);
        }
        if (::ioctl(slave.get(), TIOCSCTTY, 0) != 0) {
            child_fail(fd, ChildStage::Ctty);
        }
        if (::dup2(slave.get(), 0) < 0 || ::dup2(slave.get(), 1) < 0 ||
            ::dup2(slave.get(), 2) < 0) {
            child_fail(fd, ChildStage::Dup);
        }
        if (parent_death_signal != 0) {
            ::prctl(PR_SET_PDEATHSIG, parent_death_signal);
            // The parent may have died before prctl took effect: then no
            // signal will ever come, so act as if it had.
            if (::getppid() != supervisor_pid) {
                ::kill(::getpid(), parent_death_signal);
                ::_exit(128 + parent_death_signal);
            }
        }
        // Nothing of the supervisor leaks into the service: every other fd is
        // closed at exec (the status pipe must live until then).
        ::syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
        if (cgroup_procs) {
            int cg = ::open(cgroup_procs, O_WRONLY | O_CLOEXEC);
            if (cg < 0) {
                child_fail(fd, ChildStage::Cgroup);
            }
            // "0" means the writing process in both cgroup v1 and v2.
            if (::write(cg, "0", 1) != 1) {
                child_fail(fd, ChildStage::Cgroup);
            }
            ::close(cg);
        }
        if (cwd && ::chdir(cwd) != 0) {
            child_fail(fd, ChildStage::Chdir);
        }
        ::execve(program.c_str(), argv_ptrs.data(), env_ptrs.data());
        child_fail(fd, ChildStage::Exec);
    }

    base::UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    int pidfd_errno = errno;
    status_write.reset();
    slave.reset();

    ChildFailure failure{};
    ssize_t n;
    do {
        n = ::read(status_read.get(), &failure, sizeof failure);
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof failure)) {
        // The child is exiting with 127; reap it so no zombie is left.
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        auto stage = static_cast<ChildStage>(failure.stage);
        std::string what;
        switch (stage) {
            case ChildStage::Exec:
                what = fmt::format("exec `{}`", plan.argv[0]);
                break;
            case ChildStage::Chdir:
                what = fmt::format("changing to the working directory `{}`", plan.cwd);
                break;
            case ChildStage::Cgroup:
                what = fmt::format("joining cgroup `{}`", options.cgroup_procs_path);
                break;
            default:
                what = std::string(stage_text(stage));
                break;
        }
        return base::Error::from_errno(failure.err, std::move(what));
    }
    if (!pidfd) {
        ::kill(pid, SIGKILL);
        while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        return base::Error::from_errno(pidfd_errno, "pidfd_open");
    }
    int flags = ::fcntl(master.get(), F_GETFL);
    if (flags < 0 || ::fcntl(master.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
        int err = errno;
        ::kill(pid, SIGKILL);
        while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        return base::Error::from_errno(err, "making the PTY non-blocking");
    }
    PtyChild child;
    child.pid = pid;
    child.pidfd = std::move(pidfd);
    child.master = std::move(master);
    return child;
}

}  // namespace locald::host
