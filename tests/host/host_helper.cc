// A test program with the behaviours the host supervisor must handle:
//   write-exit N           N lines, then "last-no-newline" without '\n', exit 0
//   flood BYTES            BYTES of 100-byte lines as fast as possible, then
//                          "flood-done <ms>" and exit 0
//   ignore-term            ignore SIGTERM, print "ignoring", sleep forever
//   double-fork FILE       fork; the child forks a grandchild that writes its
//                          pid to FILE and sleeps; the child exits; sleep
//   setsid FILE            fork; the child setsid()s, writes its pid to FILE,
//                          sleeps; the parent sleeps
//   setsid-exit FILE       like setsid, but the parent exits at once
//   exit CODE              print "exiting CODE", exit CODE
//   tty                    print facts about the terminal and session, exit
//   echo                   echo stdin lines as "got: <line>" until EOF
//   notify                 send READY=1 to $NOTIFY_SOCKET, print "notified", sleep
//   notify-exit            send READY=1 to $NOTIFY_SOCKET and exit at once
//   http PORT              serve "HTTP/1.0 200" on 127.0.0.1:PORT forever
//   listen-after MS PORT   sleep MS, then accept TCP on PORT forever
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

[[noreturn]] void sleep_forever() {
    for (;;) {
        ::pause();
    }
}

void write_pid(const char* file, pid_t pid) {
    std::string tmp = std::string(file) + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    std::fprintf(f, "%d\n", pid);
    std::fclose(f);
    std::rename(tmp.c_str(), file);
}

int listen_on(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0) {
        std::perror("listen");
        std::exit(3);
    }
    return fd;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: host_helper MODE ...\n");
        return 2;
    }
    std::string mode = argv[1];
    if (mode == "write-exit") {
        int n = std::atoi(argv[2]);
        for (int i = 0; i < n; ++i) {
            std::printf("line %d\n", i);
        }
        std::printf("last-no-newline");
        std::fflush(stdout);
        return 0;
    }
    if (mode == "flood") {
        long long total = std::atoll(argv[2]);
        std::string line(99, 'x');
        line += '\n';
        std::string block;
        while (block.size() < 64 * 1024) {
            block += line;
        }
        auto start = std::chrono::steady_clock::now();
        long long done = 0;
        while (done < total) {
            size_t chunk = static_cast<size_t>(std::min<long long>(block.size(), total - done));
            ssize_t n = ::write(1, block.data(), chunk);
            if (n <= 0) {
                return 4;
            }
            done += n;
        }
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
        std::printf("\nflood-done %lld\n", static_cast<long long>(ms));
        std::fflush(stdout);
        return 0;
    }
    if (mode == "ignore-term") {
        ::signal(SIGTERM, SIG_IGN);
        std::printf("ignoring\n");
        std::fflush(stdout);
        sleep_forever();
    }
    if (mode == "double-fork") {
        pid_t child = ::fork();
        if (child == 0) {
            pid_t grandchild = ::fork();
            if (grandchild == 0) {
                write_pid(argv[2], ::getpid());
                sleep_forever();
            }
            _exit(0);
        }
        std::printf("forked\n");
        std::fflush(stdout);
        sleep_forever();
    }
    if (mode == "setsid" || mode == "setsid-exit") {
        // The session leader exiting hangs up the terminal's group: the child
        // must survive that until it has its own session.
        ::signal(SIGHUP, SIG_IGN);
        pid_t child = ::fork();
        if (child == 0) {
            ::setsid();
            write_pid(argv[2], ::getpid());
            sleep_forever();
        }
        std::printf("forked\n");
        std::fflush(stdout);
        if (mode == "setsid-exit") {
            // Exit only once the child is surely detached and recorded.
            while (::access(argv[2], F_OK) != 0) {
                ::usleep(1000);
            }
            return 0;
        }
        sleep_forever();
    }
    if (mode == "exit") {
        std::printf("exiting %s\n", argv[2]);
        std::fflush(stdout);
        return std::atoi(argv[2]);
    }
    if (mode == "tty") {
        struct winsize ws {};
        ::ioctl(0, TIOCGWINSZ, &ws);
        const char* term = std::getenv("TERM");
        std::printf("isatty=%d%d%d size=%dx%d term=%s leader=%d pgrp-leader=%d fg=%d\n",
                    ::isatty(0), ::isatty(1), ::isatty(2), ws.ws_row, ws.ws_col,
                    term ? term : "(unset)", ::getsid(0) == ::getpid(), ::getpgrp() == ::getpid(),
                    ::tcgetpgrp(0) == ::getpgrp());
        char* cwd = ::getcwd(nullptr, 0);
        std::printf("cwd=%s\n", cwd);
        std::free(cwd);
        int open_fds = 0;
        for (int fd = 3; fd < 1024; ++fd) {
            if (::fcntl(fd, F_GETFD) >= 0) {
                ++open_fds;
            }
        }
        std::printf("extra-fds=%d\n", open_fds);
        for (char** e = environ; *e; ++e) {
            std::printf("env %s\n", *e);
        }
        return 0;
    }
    if (mode == "echo") {
        char buffer[4096];
        while (std::fgets(buffer, sizeof buffer, stdin)) {
            std::printf("got: %s", buffer);
            std::fflush(stdout);
        }
        return 0;
    }
    if (mode == "notify" || mode == "notify-exit") {
        const char* path = std::getenv("NOTIFY_SOCKET");
        if (!path) {
            return 5;
        }
        int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        size_t len = std::strlen(path);
        std::memcpy(addr.sun_path, path, len);
        if (path[0] == '@') {
            addr.sun_path[0] = '\0';
        }
        const char* msg = "STATUS=warming up\nREADY=1\n";
        if (::sendto(fd, msg, std::strlen(msg), 0, reinterpret_cast<sockaddr*>(&addr),
                     static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len)) < 0) {
            std::perror("sendto");
            return 6;
        }
        if (mode == "notify-exit") {
            return 0;
        }
        std::printf("notified\n");
        std::fflush(stdout);
        sleep_forever();
    }
    if (mode == "http") {
        int fd = listen_on(std::atoi(argv[2]));
        for (;;) {
            int c = ::accept(fd, nullptr, nullptr);
            if (c < 0) {
                continue;
            }
            char buffer[1024];
            ssize_t n = ::read(c, buffer, sizeof buffer);
            (void)n;
            const char* answer = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
            ssize_t w = ::write(c, answer, std::strlen(answer));
            (void)w;
            ::close(c);
        }
    }
    if (mode == "listen-after") {
        ::usleep(static_cast<useconds_t>(std::atoi(argv[2])) * 1000);
        int fd = listen_on(std::atoi(argv[3]));
        std::printf("listening\n");
        std::fflush(stdout);
        for (;;) {
            int c = ::accept(fd, nullptr, nullptr);
            if (c >= 0) {
                ::close(c);
            }
        }
    }
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
}
