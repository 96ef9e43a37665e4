#include "daemon/userns_holder.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "base/log.h"
#include "daemon/internal/spawn_helper.h"
#include "ns/launch_main.h"

namespace locald::daemon {

namespace {

// Two setuid helper execs; generous for a loaded machine.
constexpr size_t kMaxReport = 8192;

}  // namespace

UsernsHolder::UsernsHolder(base::EventLoop& loop, std::vector<std::string> argv,
                           std::chrono::milliseconds start_timeout)
    : m_loop(loop), m_argv(std::move(argv)), m_start_timeout(start_timeout) {}

UsernsHolder::~UsernsHolder() {
    if (m_exit_watch != 0) {
        m_loop.remove(m_exit_watch);
        m_exit_watch = 0;
    }
    m_control.reset();  // EOF: the holder exits by itself
    if (m_child.valid()) {
        (void)m_child.kill(SIGKILL);
        (void)m_child.wait();
    }
}

base::Result<std::string> UsernsHolder::path(std::vector<std::string>* warnings) {
    if (!m_child.valid()) {
        TRY(start(warnings));
    }
    return fmt::format("/proc/{}/fd/{}", ::getpid(), m_ns.get());
}

void UsernsHolder::on_exit(base::ExitStatus status) {
    m_exit_watch = 0;
    m_control.reset();
    // The namespace fd stays: specs already written name it, and it is
    // still the right mapping. The next path() replaces it.
    LOG_WARN(
        "the user namespace holder exited ({}); the next image service start makes "
        "a new one",
        status.to_string());
}

base::Result<void> UsernsHolder::start(std::vector<std::string>* warnings) {
    if (m_exit_watch != 0) {
        m_loop.remove(m_exit_watch);
        m_exit_watch = 0;
    }
    m_control.reset();
    int control[2];
    int report[2];
    if (::pipe2(control, O_CLOEXEC) != 0) {
        return base::errno_error("creating the user namespace holder's pipe");
    }
    base::UniqueFd control_read(control[0]), control_write(control[1]);
    if (::pipe2(report, O_CLOEXEC) != 0) {
        return base::errno_error("creating the user namespace holder's pipe");
    }
    base::UniqueFd report_read(report[0]), report_write(report[1]);

    // `--parent=<our pid>`: the holder arms its parent-death signal and then
    // checks that its parent is still us (else we died first and it would
    // never get the signal).
    std::vector<std::string> argv = m_argv;
    argv.push_back(fmt::format("{}{}", ns::kHoldUsernsParentFlag, ::getpid()));
    auto child = internal::spawn_helper(argv, control_read.get(), report_write.get());
    if (!child) {
        return child.release_error().context("starting the user namespace holder");
    }
    base::Child holder = child.release_value();
    control_read.reset();
    report_write.reset();

    // Its report: warnings, then `ready` or `error: …`, then EOF.
    std::string text;
    auto deadline = std::chrono::steady_clock::now() + m_start_timeout;
    bool ready = false;
    for (;;) {
        if (text.find("\nready\n") != std::string::npos || text.rfind("ready\n", 0) == 0) {
            ready = true;
            break;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0) {
            (void)holder.kill(SIGKILL);
            (void)holder.wait();
            return base::deadline_exceeded(
                "the user namespace holder `{}` did not report within {} ms", argv[0],
                m_start_timeout.count());
        }
        struct pollfd pfd = {report_read.get(), POLLIN, 0};
        int rc = ::poll(&pfd, 1, static_cast<int>(left));
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        if (rc < 0) {
            return base::errno_error("waiting for the user namespace holder");
        }
        if (rc == 0) {
            continue;
        }
        char buf[512];
        ssize_t n = ::read(report_read.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;  // EOF before `ready`: it failed
        }
        if (text.size() < kMaxReport) {
            text.append(buf, static_cast<size_t>(n));
        }
    }
    std::string error_text;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        std::string line = text.substr(pos, end == std::string::npos ? end : end - pos);
        pos = end == std::string::npos ? text.size() : end + 1;
        if (line.rfind("warning: ", 0) == 0) {
            if (warnings) {
                warnings->push_back(line.substr(9));
            }
        } else if (line.rfind("error: ", 0) == 0) {
            error_text = line.substr(7);
        } else if (!line.empty() && line != "ready" && error_text.empty()) {
            error_text = line;  // e.g. the exec failed, or a crash message
        }
    }
    if (!ready) {
        // EOF before `ready`: it is on its way out. Wait for that only as long
        // as the start may take (this runs on the daemon's loop): a holder
        // that closed its output but lives on is killed, not waited for.
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        struct pollfd exited = {holder.pidfd(), POLLIN, 0};
        while (::poll(&exited, 1, static_cast<int>(std::max<int64_t>(left, 0))) < 0 &&
               errno == EINTR) {
        }
        if ((exited.revents & POLLIN) == 0) {
            (void)holder.kill(SIGKILL);
            if (error_text.empty()) {
                error_text = "it closed its output without `ready` and did not exit";
            }
        }
        auto status = holder.wait();
        std::string how = status ? status->to_string() : std::string("lost");
        return base::failed_precondition(
            "the user namespace holder `{}` failed ({}): {}", argv[0], how,
            error_text.empty() ? std::string("no message") : error_text);
    }

    // It is our child and not reaped, so /proc/<pid> is that process: open
    // its namespace, then confirm through the pidfd that it still runs (a
    // zombie has no namespaces to open; a live process keeps its pid).
    std::string ns_path = fmt::format("/proc/{}/ns/user", holder.pid());
    base::UniqueFd ns(::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) {
        return base::errno_error("opening the held user namespace `{}`", ns_path);
    }
    if (::syscall(SYS_pidfd_send_signal, holder.pidfd(), 0, nullptr, 0) != 0) {
        return base::errno_error("the user namespace holder (pid {}) exited at once", holder.pid());
    }
    struct stat held, own;
    if (::fstat(ns.get(), &held) != 0 || ::stat("/proc/self/ns/user", &own) != 0) {
        return base::errno_error("checking the held user namespace");
    }
    if (held.st_ino == own.st_ino && held.st_dev == own.st_dev) {
        return base::failed_precondition(
            "the user namespace holder (pid {}) reported ready but shares the daemon's user "
            "namespace",
            holder.pid());
    }
    if (m_ns) {
        // Same fd number as before: the paths in written specs stay valid.
        if (::dup3(ns.get(), m_ns.get(), O_CLOEXEC) < 0) {
            return base::errno_error("replacing the held user namespace fd");
        }
    } else {
        m_ns = std::move(ns);
    }
    m_child = std::move(holder);
    m_control = std::move(control_write);
    m_exit_watch =
        TRY(m_loop.watch_child(m_child, [this](base::ExitStatus status) { on_exit(status); }));
    LOG_INFO("user namespace holder started (pid {}, {})", m_child.pid(),
             fmt::format("/proc/{}/fd/{}", ::getpid(), m_ns.get()));
    return base::ok();
}

}  // namespace locald::daemon
