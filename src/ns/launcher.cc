// ns/launcher.cc — the parent side: prepare, clone, map, release, supervise.
#include "ns/launcher.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "base/userns.h"
#include "ns/internal/cgroup.h"
#include "ns/internal/context.h"

namespace locald::ns {

namespace {

using internal::ChildContext;
using internal::Step;

// The container's PID 1, in order. Numbers in the why-comments follow this
// order (see each facility's file).
const Step kInitSteps[] = {
    {"wait for the id maps", internal::wait_for_parent},
    {"become container root", internal::become_container_root},
    {"cgroup namespace", internal::enter_cgroup_namespace},
    {"hostname", internal::set_hostname},
    {"loopback", internal::bring_up_loopback},
    {"private mounts", internal::make_mounts_private},
    {"rootfs", internal::mount_rootfs},
    {"/proc", internal::mount_proc},
    {"/dev", internal::mount_dev},
    {"/sys", internal::mount_sys},
    {"mounts", internal::mount_user_mounts},
    {"/etc files", internal::mount_etc_files},
    {"masked paths", internal::mask_paths},
    {"read-only paths", internal::make_paths_read_only},
    {"user", internal::resolve_user},
    {"working directory", internal::prepare_cwd},
    {"terminal", internal::create_console},
    {"pivot_root", internal::pivot_into_rootfs},
    {"read-only rootfs", internal::make_rootfs_read_only},
};

constexpr int kForwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

void default_warn(const std::string& message) {
    std::string line = fmt::format("locald: warning: {}\n", message);
    (void)!::write(STDERR_FILENO, line.data(), line.size());
}

std::string host_resolv_conf() {
    std::ifstream in("/etc/resolv.conf");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    return text.size() > 65536 ? std::string() : text;
}

// True when `path` already holds exactly `text`.
bool has_content(const std::string& path, const std::string& text) {
    base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st;
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
        static_cast<size_t>(st.st_size) != text.size()) {
        return false;
    }
    std::string current(text.size(), '\0');
    return ::pread(fd.get(), current.data(), current.size(), 0) ==
               static_cast<ssize_t>(current.size()) &&
           current == text;
}

base::Result<void> write_text(const std::string& path, const std::string& text) {
    // A service's state dir keeps the files between starts: rewriting the
    // same bytes would truncate, and ext4 then flushes the file at close
    // (auto_da_alloc), a disk write on every container start.
    if (has_content(path, text)) {
        return base::ok();
    }
    base::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) {
        return base::errno_error("creating `{}`", path);
    }
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
        return base::errno_error("writing `{}`", path);
    }
    return base::ok();
}

// Generated /etc files, in a directory the container's root can read.
struct EtcFiles {
    std::string dir;
    bool owned = false;  // created by us, removed after the run
    ~EtcFiles() {
        if (owned) {
            for (const char* name : {"hosts", "resolv.conf", "hostname"}) {
                ::unlink(fmt::format("{}/{}", dir, name).c_str());
            }
            ::rmdir(dir.c_str());
        }
    }
};

base::Result<void> make_etc_files(const ContainerSpec& spec, const std::string& hostname,
                                  EtcFiles* files) {
    if (!spec.provide_etc_files) {
        return base::ok();
    }
    if (spec.state_dir.empty()) {
        const char* tmp = std::getenv("TMPDIR");
        std::string pattern = fmt::format("{}/locald-ns-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (::mkdtemp(pattern.data()) == nullptr) {
            return base::errno_error("creating a scratch directory `{}`", pattern);
        }
        files->dir = pattern;
        files->owned = true;
    } else {
        files->dir = spec.state_dir + "/etc";
        if (::mkdir(files->dir.c_str(), 0755) != 0 && errno != EEXIST) {
            return base::errno_error("creating `{}`", files->dir);
        }
    }
    // Readable by container root even when that is host `nobody`.
    ::chmod(files->dir.c_str(), 0755);
    TRY(write_text(files->dir + "/hostname", hostname + "\n"));
    TRY(write_text(files->dir + "/hosts",
                   fmt::format("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
                               "ip6-loopback\n127.0.1.1\t{}\n",
                               hostname)));
    TRY(write_text(files->dir + "/resolv.conf",
                   spec.network == NetworkMode::None ? std::string() : host_resolv_conf()));
    return base::ok();
}

base::Result<void> validate(const ContainerSpec& spec) {
    if (spec.rootfs.path.empty() || spec.rootfs.path.front() != '/') {
        return base::invalid_argument("the rootfs path `{}` must be absolute", spec.rootfs.path);
    }
    if (spec.args.empty()) {
        return base::invalid_argument("no command to run (the image has no Entrypoint/Cmd)");
    }
    struct stat st;
    if (::stat(spec.rootfs.path.c_str(), &st) != 0) {
        return base::errno_error("rootfs `{}`", spec.rootfs.path);
    }
    if (!S_ISDIR(st.st_mode)) {
        return base::invalid_argument("rootfs `{}` is not a directory", spec.rootfs.path);
    }
    for (const auto& mount : spec.mounts) {
        if (mount.destination.empty() || mount.destination.front() != '/') {
            return base::invalid_argument("mount destination `{}` must be absolute",
                                          mount.destination);
        }
        if (mount.kind != MountKind::Tmpfs &&
            (mount.source.empty() || mount.source.front() != '/')) {
            return base::invalid_argument("mount source `{}` must be an absolute host path",
                                          mount.source);
        }
    }
    return base::ok();
}

// Restores the signal mask when the run ends, however it ends.
struct SignalMaskGuard {
    sigset_t old;
    ~SignalMaskGuard() { ::sigprocmask(SIG_SETMASK, &old, nullptr); }
};

int status_code(int status) {
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}

}  // namespace

std::optional<int> exec_failure_status(const base::Error& error) {
    if (error.message().rfind("container setup step `exec`:", 0) != 0) {
        return std::nullopt;
    }
    return error.kind() == base::ErrorKind::NotFound ? 127 : 126;
}

base::Result<int> Launcher::run(const ContainerSpec& spec, const LaunchOptions& options) {
    auto warn = options.warn ? options.warn : default_warn;
    TRY(validate(spec));

    // Everything that can be decided outside the container is decided here,
    // before clone, so the container side only executes.
    ChildContext ctx;
    ctx.spec = &spec;
    ctx.mapping = TRY(base::container_mapping().context("reading the subordinate id ranges"));
    if (!ctx.mapping.warning.empty()) {
        warn(ctx.mapping.warning);
    }
    ctx.hostname =
        !spec.hostname.empty() ? spec.hostname : (!spec.name.empty() ? spec.name : "locald");
    ctx.capabilities = spec.capabilities
                           ? TRY(internal::capabilities_from_names(*spec.capabilities))
                           : internal::default_capabilities();
    if (spec.seccomp) {
        ctx.seccomp_bpf = TRY(internal::default_seccomp_bpf(spec.seccomp_cache_dir)
                                  .context("compiling the seccomp profile"));
    }
    EtcFiles etc;
    TRY(make_etc_files(spec, ctx.hostname, &etc));
    ctx.etc_dir = etc.dir;

    internal::CgroupPlan cgroup = internal::prepare_cgroup(spec);
    if (!cgroup.warning.empty()) {
        warn(cgroup.warning);
    }
    struct CgroupGuard {
        const internal::CgroupPlan& plan;
        ~CgroupGuard() { internal::destroy_cgroup(plan); }
    } cgroup_guard{cgroup};

    // Forwarded signals and SIGCHLD are taken synchronously (sigwaitinfo);
    // blocking them before clone also gives PID 1 the mask it needs.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    for (int sig : kForwarded) {
        sigaddset(&set, sig);
    }
    SignalMaskGuard mask_guard;
    if (::sigprocmask(SIG_BLOCK, &set, &mask_guard.old) != 0) {
        return base::errno_error("sigprocmask");
    }

    int go[2];
    int errors[2];
    if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(errors, O_CLOEXEC) != 0) {
        return base::errno_error("creating the sync pipes");
    }
    base::UniqueFd go_read(go[0]), go_write(go[1]);
    base::UniqueFd errors_read(errors[0]), errors_write(errors[1]);
    // tty: the container's pty master comes back over this socket.
    base::UniqueFd console_parent, console_child;
    if (spec.tty) {
        int pair[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
            return base::errno_error("creating the terminal socket");
        }
        console_parent = base::UniqueFd(pair[0]);
        console_child = base::UniqueFd(pair[1]);
    }

    // sync 0: clone PID 1 straight into all its namespaces (no re-exec).
    unsigned long flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
    bool joined_userns = !spec.user_namespace.empty();
    if (joined_userns) {
        // The user namespace exists and is mapped: join it, and the other
        // namespaces are created inside it (owned by it), no helper runs.
        TRY(internal::join_user_namespace(spec.user_namespace, ctx.mapping));
        flags &= ~static_cast<unsigned long>(CLONE_NEWUSER);
    }
    if (spec.network == NetworkMode::None) {
        flags |= CLONE_NEWNET;
    }
    pid_t pid = static_cast<pid_t>(
        ::syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
    if (pid < 0) {
        return base::errno_error(
            "clone into new namespaces (are unprivileged user namespaces "
            "enabled? see `locald doctor`)");
    }
    if (pid == 0) {
        go_write.reset();
        errors_read.reset();
        ctx.go_fd = go_read.release();
        ctx.error_fd = errors_write.release();
        console_parent.reset();
        ctx.console_fd = console_child ? console_child.release() : -1;
        internal::run_steps(ctx, kInitSteps, sizeof kInitSteps / sizeof kInitSteps[0]);
        ::_exit(internal::run_init(ctx));
    }
    go_read.reset();
    errors_write.reset();
    console_child.reset();

    auto reap = [pid]() -> int {
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                return 125;
            }
        }
        return status_code(status);
    };
    auto abort_child = [&](base::Error error) -> base::Error {
        ::kill(pid, SIGKILL);
        (void)reap();
        return error;
    };

    // sync 1: map ids (newgidmap and newuidmap side by side) and place PID 1 in its cgroup.
    if (!joined_userns) {
        if (auto mapped = base::write_id_maps(pid, ctx.mapping); !mapped) {
            return abort_child(mapped.release_error().context("mapping the container's ids"));
        }
    }
    if (auto joined = internal::join_cgroup(cgroup, pid); !joined) {
        return abort_child(joined.release_error());
    }
    // sync 2: release PID 1.
    char byte = 'g';
    if (::write(go_write.get(), &byte, 1) != 1) {
        return abort_child(base::errno_error("releasing the container"));
    }
    go_write.reset();
    // tty: the terminal arrives before the payload runs (EOF if setup failed
    // first; the error channel then says why).
    base::UniqueFd console;
    if (console_parent) {
        auto received = internal::receive_console(console_parent.get());
        if (!received) {
            return abort_child(received.release_error());
        }
        console = std::move(*received);
        console_parent.reset();
    }
    // sync 3: the channel reaches EOF when the payload has exec'd (or setup failed).
    if (auto setup = internal::receive_error(errors_read.get()); !setup) {
        (void)reap();
        return setup.release_error();
    }
    auto report_oom = [&]() {
        if (internal::cgroup_oom_killed(cgroup)) {
            warn(fmt::format("the container was killed by the OOM killer (memory limit {} bytes)",
                             spec.resources.memory_bytes.value_or(0)));
        }
    };
    if (console) {
        // Relay our stdin/stdout to the container's terminal until PID 1 exits.
        int code = status_code(internal::relay_console(console.get(), pid, set));
        report_oom();
        return code;
    }

    // Supervise: forward signals to PID 1 (which forwards to the payload)
    // until PID 1 exits.
    for (;;) {
        siginfo_t info;
        int sig = ::sigwaitinfo(&set, &info);
        if (sig < 0) {
            continue;
        }
        if (sig == SIGCHLD) {
            int status = 0;
            pid_t done = ::waitpid(pid, &status, WNOHANG);
            if (done == pid) {
                int code = status_code(status);
                report_oom();
                return code;
            }
            continue;
        }
        ::kill(pid, sig);
    }
}

}  // namespace locald::ns
