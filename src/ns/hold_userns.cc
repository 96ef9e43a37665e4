// ns/hold_userns.cc — `locald-launch --hold-userns`: a process that does
// nothing but keep one user namespace, mapped exactly as every container's
// (base::container_mapping()), for a daemon to hand to its launchers
// (spec.user_namespace): podman's rootless pause process.
//
// Why: each fresh user namespace costs two setuid helper execs (newgidmap,
// newuidmap) on the container's start path, ≈2.5 ms of a ≈6.5 ms start here
// (docs/benchmarks/ns-start.md). Made once and joined by every container, it
// costs nothing per start.
//
// Protocol with the parent (the daemon): `--parent=PID` names it; stdin is a
// pipe whose write end only the parent holds — its EOF (the parent died or
// let go) ends the holder, as does PR_SET_PDEATHSIG (armed, then the parent
// checked against PID); stdout carries `warning: …` lines, then exactly one
// `ready` or `error: …` line, and is then closed. The holder unshares its own
// user namespace (so the namespace's first member is the daemon's direct
// child, which the daemon can open race-free before reaping), and a forked
// helper, still outside, writes the maps as the launcher would
// (newgidmap ∥ newuidmap, or /proc writes for root or a single mapping).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "base/userns.h"
#include "ns/internal/context.h"
#include "ns/launch_main.h"

namespace locald::ns {

namespace {

void say(const std::string& line) {
    std::string text = line + "\n";
    const char* p = text.data();
    size_t left = text.size();
    while (left > 0) {
        ssize_t n = ::write(STDOUT_FILENO, p, left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        p += n;
        left -= static_cast<size_t>(n);
    }
}

int fail(const base::Error& error) {
    std::string text = error.to_string();
    for (char& c : text) {
        c = c == '\n' ? ' ' : c;
    }
    say("error: " + text);
    return 1;
}

// Forks the helper that maps `self` once it has unshared, then unshares.
base::Result<void> make_mapped_namespace(const base::IdMapping& mapping) {
    int go[2];
    int result[2];
    if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(result, O_CLOEXEC) != 0) {
        return base::errno_error("creating the holder's pipes");
    }
    base::UniqueFd go_read(go[0]), go_write(go[1]);
    base::UniqueFd result_read(result[0]), result_write(result[1]);
    pid_t self = ::getpid();
    pid_t helper = ::fork();
    if (helper < 0) {
        return base::errno_error("forking the id-map helper");
    }
    if (helper == 0) {
        // Outside the new namespace: wait until the holder has unshared, then
        // map it; the error text (if any) goes back over `result`.
        go_write.reset();
        result_read.reset();
        char byte = 0;
        ssize_t n;
        while ((n = ::read(go_read.get(), &byte, 1)) < 0 && errno == EINTR) {
        }
        if (n != 1) {
            ::_exit(1);
        }
        auto mapped = base::write_id_maps(self, mapping);
        if (!mapped) {
            std::string text = mapped.error().to_string();
            (void)!::write(result_write.get(), text.data(), text.size());
            ::_exit(1);
        }
        ::_exit(0);
    }
    go_read.reset();
    result_write.reset();
    int unshared = ::unshare(CLONE_NEWUSER);
    int unshare_errno = errno;
    if (unshared == 0) {
        (void)!::write(go_write.get(), "g", 1);
    }
    go_write.reset();
    std::string text;
    char buf[512];
    for (;;) {
        ssize_t n = ::read(result_read.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0 || text.size() > 4096) {
            break;
        }
        text.append(buf, static_cast<size_t>(n));
    }
    int status = 0;
    while (::waitpid(helper, &status, 0) < 0 && errno == EINTR) {
    }
    if (unshared != 0) {
        return base::Error::from_errno(unshare_errno,
                                       "creating the user namespace (are unprivileged user "
                                       "namespaces enabled? see `locald doctor`)");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return base::permission_denied("mapping the held user namespace: {}",
                                       text.empty() ? "the id-map helper failed" : text);
    }
    return base::ok();
}

}  // namespace

int hold_user_namespace_main(pid_t expected_parent) {
    // Dies with the parent even if it never closes the pipe (the daemon sets
    // this before exec too; a set-id-free exec keeps it). Armed first, then
    // the parent checked: a parent that died before this line has already
    // sent its (unarmed) death signal, so only the check can see it. Read
    // before arming, a parent dying in between would go unnoticed and the
    // holder would hold forever. `expected_parent` (the daemon passes its
    // pid) also catches an adoption by a subreaper, whose pid is not 1.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    pid_t parent = ::getppid();
    if (expected_parent > 0 && parent != expected_parent) {
        return fail(base::failed_precondition(
            "the parent (pid {}) exited before the holder started; now adopted by pid {}",
            expected_parent, parent));
    }
    if (parent == 1) {
        return 1;
    }
    // A holder must not pin the directory it was started in (a mount point).
    if (::chdir("/") != 0) {
        return fail(base::errno_error("changing to `/`"));
    }
    auto mapping = base::container_mapping();
    if (!mapping) {
        return fail(mapping.release_error().context("reading the subordinate id ranges"));
    }
    if (!mapping->warning.empty()) {
        say("warning: " + mapping->warning);
    }
    if (auto made = make_mapped_namespace(*mapping); !made) {
        return fail(made.error());
    }
    say("ready");
    // Nothing more to say: stdout and stderr to /dev/null, so the parent's
    // reader sees EOF and nothing keeps its pipe.
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd >= 0) {
        ::dup2(null_fd, STDOUT_FILENO);
        ::dup2(null_fd, STDERR_FILENO);
        ::close(null_fd);
    }
    ::close_range(3, ~0u, 0);
    // Wait for EOF on stdin: the parent closed its end or died.
    char buf[64];
    for (;;) {
        ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return 0;
        }
    }
}

}  // namespace locald::ns
