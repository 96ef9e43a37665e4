// tests/layers/process_util.h — watching the helper processes the layers
// code forks: whose children they are, and whether they end.
#pragma once

#include <errno.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace locald::layers::testing {

// The children of `pid` (of its main thread, which is the one that forks).
inline std::vector<pid_t> children_of(pid_t pid) {
    std::ifstream in(fmt::format("/proc/{}/task/{}/children", pid, pid));
    std::vector<pid_t> out;
    pid_t child;
    while (in >> child) {
        out.push_back(child);
    }
    return out;
}

// Whether `pid` exits (or has exited) within a bound generous enough that
// only a process that would never exit reaches it.
inline bool process_ends(pid_t pid) {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) {
        return errno == ESRCH;
    }
    struct pollfd pfd = {fd, POLLIN, 0};
    int rc;
    while ((rc = ::poll(&pfd, 1, 60000)) < 0 && errno == EINTR) {
    }
    ::close(fd);
    return rc > 0;
}

}  // namespace locald::layers::testing
