#include "daemon/internal/spawn_helper.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstring>

extern char** environ;

namespace locald::daemon::internal {

base::Result<base::Child> spawn_helper(const std::vector<std::string>& argv, int stdin_fd,
                                       int stdout_fd) {
    if (argv.empty()) {
        return base::invalid_argument("no program to run");
    }
    // Everything the child needs is prepared before fork.
    std::vector<std::string> copy = argv;
    std::vector<char*> args;
    for (auto& arg : copy) {
        args.push_back(arg.data());
    }
    args.push_back(nullptr);
    const char* program = copy[0].c_str();
    const pid_t parent = ::getpid();
    return base::Child::spawn([&]() -> int {
        ::setpgid(0, 0);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) {
            return 127;  // the daemon died before PDEATHSIG was armed
        }
        sigset_t empty;
        sigemptyset(&empty);
        ::sigprocmask(SIG_SETMASK, &empty, nullptr);
        struct sigaction dfl;
        std::memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; ++sig) {
            ::sigaction(sig, &dfl, nullptr);
        }
        if (::dup2(stdin_fd, 0) < 0 || ::dup2(stdout_fd, 1) < 0 || ::dup2(stdout_fd, 2) < 0) {
            return 127;
        }
        ::close_range(3, ~0u, 0);
        ::execve(program, args.data(), environ);
        // Said on the output the daemon reads (async-signal-safe writes only).
        const char prefix[] = "cannot execute `";
        const char suffix[] = "`\n";
        ssize_t ignored = ::write(1, prefix, sizeof prefix - 1);
        ignored = ::write(1, program, std::strlen(program));
        ignored = ::write(1, suffix, sizeof suffix - 1);
        (void)ignored;
        return 127;
    });
}

}  // namespace locald::daemon::internal
