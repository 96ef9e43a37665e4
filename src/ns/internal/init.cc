// ns/internal/init.cc — the container's PID 1 (bwrap's do_init pattern).
//
// PID 1 of a pid namespace ignores every signal it has no handler for, and
// orphans are re-parented to it. So PID 1 is ours, not the payload: it forks
// the payload, forwards the launcher's signals to it, reaps every orphan, and
// exits with the payload's status (128+N for a signal) as soon as the payload
// exits — the kernel then kills whatever is left in the namespace.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/close_range.h>

#include "ns/internal/context.h"

namespace locald::ns::internal {

namespace {

const Step kPayloadSteps[] = {
    {"session", start_session},
    {"cwd", enter_cwd},
    {"rlimits", apply_rlimits},
    {"close fds", close_extra_fds},
    {"user and capabilities", switch_user_and_capabilities},
    {"no_new_privs", set_no_new_privs},
    {"seccomp", load_seccomp},
    {"exec", exec_payload},
};

}  // namespace

int run_init(ChildContext& ctx) {
    pid_t payload = ::fork();
    if (payload < 0) {
        send_error(ctx.error_fd, "fork payload", base::errno_error("fork"));
        return 125;
    }
    if (payload == 0) {
        ctx.rootfs_fd.reset();
        run_steps(ctx, kPayloadSteps, sizeof kPayloadSteps / sizeof kPayloadSteps[0]);
        ::_exit(127);  // exec_payload only returns with an error, reported above
    }
    ctx.payload_pid = payload;
    // `ps` inside shows PID 1 for what it is.
    ::prctl(PR_SET_NAME, "locald-init", 0, 0, 0);
    ctx.rootfs_fd.reset();
    auto dropped = drop_init_privileges(ctx);
    if (!dropped) {
        send_error(ctx.error_fd, "init privileges", dropped.error());
        ::kill(payload, SIGKILL);
        return 125;
    }
    // Our copy of the error channel closes now; the payload's closes at exec.
    ::close(ctx.error_fd);
    ctx.error_fd = -1;
    // PID 1 needs no fd at all beyond stdio: nothing the launcher inherited
    // (a daemon's socket, a host directory) stays open inside the container.
    ::close_range(3, ~0U, 0);

    // The launcher blocked these (and SIGCHLD) before cloning us; we inherit
    // the mask and take them synchronously.
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH}) {
        sigaddset(&set, sig);
    }
    for (;;) {
        siginfo_t info;
        int sig = ::sigwaitinfo(&set, &info);
        if (sig < 0) {
            continue;  // EINTR
        }
        if (sig != SIGCHLD) {
            ::kill(payload, sig);
            continue;
        }
        for (;;) {
            int status = 0;
            pid_t pid = ::waitpid(-1, &status, WNOHANG);
            if (pid <= 0) {
                break;
            }
            if (pid == payload) {
                if (WIFSIGNALED(status)) {
                    return 128 + WTERMSIG(status);
                }
                return WEXITSTATUS(status);
            }
        }
    }
}

}  // namespace locald::ns::internal
