// Helpers shared by the host tests: the helper program, temp dirs, reading a
// PTY to the end, waiting for a condition without timing assertions.
#pragma once

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

namespace locald::host::testing {

inline std::string helper_path() {
    return HOST_HELPER_PATH;
}

// A fresh directory under TMPDIR (or /tmp), removed by the caller if wanted.
inline std::string make_temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/locald-host-test.XXXXXX";
    char* made = ::mkdtemp(tmpl.data());
    return made ? std::string(made) : std::string();
}

// Polls `condition` every few ms for up to `limit` (a safety net against
// hangs, not a timing assertion: a slow machine only waits longer).
inline bool wait_until(const std::function<bool()>& condition,
                       std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return condition();
}

// Reads a PTY master until EIO (all slave fds closed) or `limit`.
inline std::string read_until_eio(int fd,
                                  std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + limit;
    char buffer[65536];
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        ::poll(&p, 1, 100);
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n > 0) {
            out.append(buffer, static_cast<size_t>(n));
        } else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            break;  // EIO: the other side is gone and everything was read
        }
    }
    return out;
}

inline pid_t read_pid_file(const std::string& path) {
    pid_t pid = 0;
    wait_until([&] {
        std::ifstream in(path);
        return static_cast<bool>(in >> pid);
    });
    return pid;
}

// True while `pid` exists and is not a zombie.
inline bool process_alive(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) {
        return false;
    }
    auto close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

// True when no /proc entry exists at all (also reaped).
inline bool process_gone(pid_t pid) {
    return ::kill(pid, 0) != 0 && errno == ESRCH;
}

}  // namespace locald::host::testing
