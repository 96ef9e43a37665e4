// ns/internal/userns.cc — the container side of the user namespace.
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "ns/internal/context.h"

namespace locald::ns::internal {

base::Result<void> wait_for_parent(ChildContext& ctx) {
    // 1. Nothing may happen before the parent has written our uid/gid maps:
    //    until then every id we own is the overflow id, files we create would
    //    be owned by nobody, and overlay/proc mounts would be refused.
    char byte = 0;
    ssize_t n;
    do {
        n = ::read(ctx.go_fd, &byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
        // The parent failed (and reports why) or died: leave quietly.
        ::_exit(125);
    }
    ::close(ctx.go_fd);
    ctx.go_fd = -1;
    // 2. Die with the launcher: a container must never outlive the process
    //    that supervises it (the pid namespace then dies with us).
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        return base::errno_error("prctl(PR_SET_PDEATHSIG)");
    }
    //    And leave the launcher's session: nothing in the container keeps the
    //    launcher's terminal as its controlling tty, and keyboard signals
    //    reach the container only once, forwarded by the launcher.
    if (::setsid() < 0) {
        return base::errno_error("setsid");
    }
    return base::ok();
}

base::Result<void> become_container_root(ChildContext& ctx) {
    // 3. Become uid/gid 0 of the namespace (the user itself on the host, or
    //    nobody when launched by root without a range): we hold every
    //    capability here, and none outside.
    if (::setresgid(0, 0, 0) != 0) {
        return base::errno_error("setresgid(0, 0, 0)");
    }
    if (!ctx.mapping.deny_setgroups && ::setgroups(0, nullptr) != 0) {
        return base::errno_error("setgroups([])");
    }
    if (::setresuid(0, 0, 0) != 0) {
        return base::errno_error("setresuid(0, 0, 0)");
    }
    return base::ok();
}

base::Result<void> enter_cgroup_namespace(ChildContext&) {
    // 4. A cgroup namespace after the parent moved us into our cgroup, so
    //    /proc/self/cgroup shows "/" and the host's hierarchy is not revealed.
    if (::unshare(CLONE_NEWCGROUP) != 0) {
        return base::errno_error("unshare(CLONE_NEWCGROUP)");
    }
    return base::ok();
}

}  // namespace locald::ns::internal
