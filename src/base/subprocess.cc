#include "base/subprocess.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "base/scope_guard.h"
#include "base/sys.h"

namespace locald::base {

namespace {

// In the forked child: only async-signal-safe calls until exec.
[[noreturn]] void exec_child(const SubprocessOptions& options, const char* executable,
                             char* const* argv, char* const* envp, int stdin_fd, int stdout_fd,
                             int stderr_fd, int error_fd) {
    auto fail = [&](int err) {
        ssize_t ignored = ::write(error_fd, &err, sizeof err);
        (void)ignored;
        ::_exit(127);
    };
    // signalfd users block signals; an exec'd program must start clean.
    sigset_t empty;
    sigemptyset(&empty);
    ::sigprocmask(SIG_SETMASK, &empty, nullptr);
    for (int signo = 1; signo < NSIG; ++signo) {
        if (signo != SIGKILL && signo != SIGSTOP) {
            ::signal(signo, SIG_DFL);
        }
    }
    int sources[3] = {stdin_fd, stdout_fd, stderr_fd};
    for (int target = 0; target < 3; ++target) {
        if (sources[target] == target) {
            // dup2 onto itself keeps O_CLOEXEC; clear it by hand.
            if (::fcntl(target, F_SETFD, 0) != 0) {
                fail(errno);
            }
        } else if (::dup2(sources[target], target) < 0) {
            fail(errno);
        }
    }
    if (!options.cwd.empty() && ::chdir(options.cwd.c_str()) != 0) {
        fail(errno);
    }
    // Everything else stays behind (locald opens all fds O_CLOEXEC, this
    // catches anything a library opened without it). The error pipe is
    // already close-on-exec.
    ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execve(executable, argv, envp != nullptr ? envp : environ);
    fail(errno);
    ::_exit(127);
}

// Reads what is available from `fd` into `out` (up to `cap`). Returns false
// once the fd reached EOF (or failed) and should no longer be polled.
bool drain(int fd, std::string& out, size_t cap, bool& truncated) {
    char buffer[16384];
    while (true) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN;
        }
        if (n == 0) {
            return false;
        }
        size_t room = cap - out.size();
        if (static_cast<size_t>(n) > room) {
            out.append(buffer, room);
            truncated = true;
            return false;
        }
        out.append(buffer, static_cast<size_t>(n));
    }
}

// The PATH the child will see: from `env` when given, else ours.
std::string search_path(const SubprocessOptions& options) {
    if (options.env) {
        for (const std::string& entry : *options.env) {
            if (entry.starts_with("PATH=")) {
                return entry.substr(5);
            }
        }
    } else if (const char* path = std::getenv("PATH")) {
        return path;
    }
    return "/usr/local/bin:/usr/bin:/bin";
}

// execvp-style lookup done before fork, so the result does not depend on
// which PATH directories happen to be unreadable for us (execvp reports
// EACCES then), and so the child's PATH (not ours) decides.
Result<std::string> find_program(const std::string& name, const std::string& path) {
    if (name.find('/') != std::string::npos) {
        return name;
    }
    size_t start = 0;
    while (start <= path.size()) {
        size_t colon = path.find(':', start);
        if (colon == std::string::npos) {
            colon = path.size();
        }
        std::string dir = path.substr(start, colon - start);
        start = colon + 1;
        std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
        struct stat st;
        if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
            ::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
    }
    return Error::from_errno(ENOENT, fmt::format("running `{}`: not found in PATH", name));
}

}  // namespace

Result<SubprocessResult> run_subprocess(const SubprocessOptions& options) {
    if (options.argv.empty() || options.argv[0].empty()) {
        return invalid_argument("running a program: empty argv");
    }
    const std::string& program = options.argv[0];
    std::string executable = TRY(find_program(program, search_path(options)));
    // Build the exec arrays before forking: the child must not allocate.
    std::vector<char*> argv;
    for (const std::string& arg : options.argv) {
        argv.push_back(const_cast<char*>(arg.c_str()));
    }
    argv.push_back(nullptr);
    std::vector<char*> envp;
    if (options.env) {
        for (const std::string& entry : *options.env) {
            envp.push_back(const_cast<char*>(entry.c_str()));
        }
        envp.push_back(nullptr);
    }

    UniqueFd stdin_read;
    UniqueFd stdin_write;
    if (options.stdin_data) {
        Pipe pipe = TRY(make_pipe());
        stdin_read = std::move(pipe.read);
        stdin_write = std::move(pipe.write);
        TRY(set_nonblocking(stdin_write.get()));
    } else {
        stdin_read = TRY(open_file("/dev/null", O_RDONLY));
    }
    Pipe out = TRY(make_pipe());
    Pipe err = TRY(make_pipe());
    Pipe exec_error = TRY(make_pipe());
    TRY(set_nonblocking(out.read.get()));
    TRY(set_nonblocking(err.read.get()));

    pid_t pid = ::fork();
    if (pid < 0) {
        return errno_error("running `{}`: forking", program);
    }
    if (pid == 0) {
        exec_child(options, executable.c_str(), argv.data(), options.env ? envp.data() : nullptr,
                   stdin_read.get(), out.write.get(), err.write.get(), exec_error.write.get());
    }
    auto adopted = Child::adopt(pid);
    if (!adopted) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        return adopted.release_error().context(fmt::format("running `{}`", program));
    }
    Child child = adopted.release_value();
    stdin_read.reset();
    out.write.reset();
    err.write.reset();
    exec_error.write.reset();

    auto deadline = options.timeout ? std::chrono::steady_clock::now() + *options.timeout
                                    : std::chrono::steady_clock::time_point::max();
    auto poll_timeout = [&]() -> int {
        if (!options.timeout) {
            return -1;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        return left.count() <= 0 ? 0
                                 : static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30));
    };
    auto timed_out = [&]() -> Result<SubprocessResult> {
        TRY(child.kill(SIGKILL));
        TRY(child.wait());
        return deadline_exceeded("running `{}`: no exit after {} ms", program,
                                 options.timeout->count());
    };

    // EOF means exec succeeded (the pipe was close-on-exec); 4 bytes are
    // the errno of the failed step. EOF can be held off: a process another
    // thread of ours forked (without exec) while the write end was open
    // holds a copy. So the child's exit also ends the wait (it wrote its
    // errno before exiting, if it failed), and so does the timeout.
    int exec_errno = 0;
    size_t got = 0;
    for (;;) {
        struct pollfd fds[2] = {{exec_error.read.get(), POLLIN, 0}, {child.pidfd(), POLLIN, 0}};
        int ready = ::poll(fds, 2, poll_timeout());
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno_error("running `{}`: waiting for its exec", program);
        }
        if (ready == 0) {
            return timed_out();
        }
        if (fds[0].revents != 0) {
            ssize_t n = ::read(exec_error.read.get(), reinterpret_cast<char*>(&exec_errno) + got,
                               sizeof exec_errno - got);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n > 0) {
                got += static_cast<size_t>(n);
                if (got < sizeof exec_errno) {
                    continue;
                }
            }
            break;  // the errno, or EOF (or an error: treated as EOF)
        }
        break;  // exited without a word: exec succeeded
    }
    if (got == sizeof exec_errno) {
        TRY(child.wait());
        return Error::from_errno(exec_errno, fmt::format("running `{}`", program));
    }

    // Writing to a pipe whose reader is gone raises SIGPIPE in this thread;
    // block it while we write and swallow a pending one afterwards.
    sigset_t pipe_set;
    sigset_t old_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
    bool pipe_was_blocked = sigismember(&old_set, SIGPIPE) == 1;
    ScopeGuard restore_mask([&] {
        if (!pipe_was_blocked) {
            struct timespec zero = {0, 0};
            while (::sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {
            }
            ::pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
        }
    });

    SubprocessResult result;
    std::string_view to_write = options.stdin_data ? *options.stdin_data : std::string_view();
    if (stdin_write.valid() && to_write.empty()) {
        stdin_write.reset();
    }
    bool out_open = true;
    bool err_open = true;
    bool exited = false;
    while (!exited) {
        struct pollfd fds[4];
        nfds_t count = 0;
        int out_index = -1;
        int err_index = -1;
        int in_index = -1;
        if (out_open) {
            out_index = static_cast<int>(count);
            fds[count++] = {out.read.get(), POLLIN, 0};
        }
        if (err_open) {
            err_index = static_cast<int>(count);
            fds[count++] = {err.read.get(), POLLIN, 0};
        }
        if (stdin_write.valid()) {
            in_index = static_cast<int>(count);
            fds[count++] = {stdin_write.get(), POLLOUT, 0};
        }
        int child_index = static_cast<int>(count);
        fds[count++] = {child.pidfd(), POLLIN, 0};
        int timeout_ms = poll_timeout();
        if (timeout_ms == 0) {
            return timed_out();
        }
        int ready = ::poll(fds, count, timeout_ms);
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno_error("running `{}`: polling its output", program);
        }
        if (out_index >= 0 && fds[out_index].revents != 0) {
            out_open = drain(out.read.get(), result.stdout_data, options.max_stdout,
                             result.stdout_truncated);
        }
        if (err_index >= 0 && fds[err_index].revents != 0) {
            err_open = drain(err.read.get(), result.stderr_data, options.max_stderr,
                             result.stderr_truncated);
        }
        if (in_index >= 0 && fds[in_index].revents != 0) {
            ssize_t n = ::write(stdin_write.get(), to_write.data(), to_write.size());
            if (n > 0) {
                to_write.remove_prefix(static_cast<size_t>(n));
            }
            // Done, or the child closed its stdin (EPIPE): either way stop.
            if (to_write.empty() || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                stdin_write.reset();
            }
        }
        if (result.stdout_truncated || result.stderr_truncated) {
            TRY(child.kill(SIGKILL));
        }
        if (fds[child_index].revents != 0) {
            // The child is gone: take what it wrote, but do not wait for EOF,
            // which a daemonised grandchild could hold off forever.
            if (out_open) {
                drain(out.read.get(), result.stdout_data, options.max_stdout,
                      result.stdout_truncated);
            }
            if (err_open) {
                drain(err.read.get(), result.stderr_data, options.max_stderr,
                      result.stderr_truncated);
            }
            exited = true;
        }
    }
    result.status = TRY(child.wait());
    return result;
}

}  // namespace locald::base
