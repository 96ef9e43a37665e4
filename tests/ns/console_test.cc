// Tests for the launcher's terminal relay (ns/internal/console.cc,
// relay_console) without a container: a forked "PID 1" writes to a pty slave
// and exits; the relay copies the master to its stdout.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <string>

#include "ns/internal/context.h"

namespace locald::ns::internal {
namespace {

constexpr size_t kPayloadBytes = 1 << 20;

// Runs in a forked child: stdin and stdout are one socket (one open file
// description, as a terminal's fds 0 and 1 usually are), "PID 1" writes
// kPayloadBytes to the pty and exits 7. Exits 0 when the relay returned 7.
[[noreturn]] void relay_child(int socket) {
    ::dup2(socket, STDIN_FILENO);
    ::dup2(socket, STDOUT_FILENO);
    ::close(socket);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGWINCH);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) {
        ::_exit(10);
    }
    std::string slave_name = ::ptsname(master);
    pid_t init = ::fork();
    if (init == 0) {
        int slave = ::open(slave_name.c_str(), O_RDWR | O_NOCTTY);
        struct termios raw;
        if (slave < 0 || ::tcgetattr(slave, &raw) != 0) {
            ::_exit(11);
        }
        ::cfmakeraw(&raw);
        ::tcsetattr(slave, TCSANOW, &raw);
        std::string chunk(4096, 'x');
        for (size_t done = 0; done < kPayloadBytes; done += chunk.size()) {
            if (::write(slave, chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size())) {
                ::_exit(12);
            }
        }
        ::_exit(7);
    }
    int status = relay_console(master, init, set);
    ::_exit(WIFEXITED(status) && WEXITSTATUS(status) == 7 ? 0 : 13);
}

TEST(ConsoleRelay, WhatThePayloadWroteBeforeExitReachesASlowReader) {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    int small = 4096;
    ::setsockopt(pair[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    pid_t relay = ::fork();
    ASSERT_GE(relay, 0);
    if (relay == 0) {
        ::close(pair[0]);
        relay_child(pair[1]);
    }
    ::close(pair[1]);
    // A reader slower than the payload: the socket is full when PID 1 exits,
    // and the relay must still copy out everything it has (not drop it at
    // the first EAGAIN).
    size_t total = 0;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(pair[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        total += static_cast<size_t>(n);
        ::usleep(200);
    }
    ::close(pair[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(relay, &status, 0), relay);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    EXPECT_EQ(total, kPayloadBytes);
}

}  // namespace
}  // namespace locald::ns::internal
