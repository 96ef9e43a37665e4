// ns/internal/process.cc — the payload's session, cwd, rlimits, fds and exec.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "base/confined.h"
#include "ns/internal/context.h"

extern char** environ;

namespace locald::ns::internal {

base::Result<void> start_session(ChildContext& ctx) {
    // 21. The payload starts with default signal dispositions and an empty
    //     mask (PID 1 blocked the forwarded signals for itself).
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            ::signal(sig, SIG_DFL);
        }
    }
    sigset_t empty;
    sigemptyset(&empty);
    if (::sigprocmask(SIG_SETMASK, &empty, nullptr) != 0) {
        return base::errno_error("sigprocmask");
    }
    // A new session: the payload can never inject input into the launcher's
    // terminal (TIOCSTI, CVE-2017-5226). With a tty its controlling terminal
    // is the container's own pty (console.cc); without, it has none and
    // terminal signals go to the launcher, which forwards them once.
    if (ctx.console_slave) {
        return attach_console(ctx);
    }
    if (::setsid() < 0) {
        return base::errno_error("setsid");
    }
    return base::ok();
}

base::Result<void> enter_cwd(ChildContext& ctx) {
    // 22. The working directory is resolved inside the new root (no magic
    //     links: a leaked fd cannot become the cwd, CVE-2024-21626).
    base::UniqueFd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root) {
        return base::errno_error("opening `/`");
    }
    auto dir = TRY(base::open_in_root(root.get(), ctx.spec->cwd, O_PATH | O_DIRECTORY));
    if (::fchdir(dir.get()) != 0) {
        return base::errno_error("chdir `{}`", ctx.spec->cwd);
    }
    return base::ok();
}

base::Result<void> apply_rlimits(ChildContext& ctx) {
    static const std::map<std::string, int> kResources = {
        {"as", RLIMIT_AS},
        {"core", RLIMIT_CORE},
        {"cpu", RLIMIT_CPU},
        {"data", RLIMIT_DATA},
        {"fsize", RLIMIT_FSIZE},
        {"locks", RLIMIT_LOCKS},
        {"memlock", RLIMIT_MEMLOCK},
        {"msgqueue", RLIMIT_MSGQUEUE},
        {"nice", RLIMIT_NICE},
        {"nofile", RLIMIT_NOFILE},
        {"nproc", RLIMIT_NPROC},
        {"rss", RLIMIT_RSS},
        {"rtprio", RLIMIT_RTPRIO},
        {"rttime", RLIMIT_RTTIME},
        {"sigpending", RLIMIT_SIGPENDING},
        {"stack", RLIMIT_STACK},
    };
    // 23. rlimits, before dropping to the user (raising a hard limit needs
    //     CAP_SYS_RESOURCE, which we do not have either way: limits can only
    //     go down from the launcher's).
    for (const auto& limit : ctx.spec->rlimits) {
        std::string name = limit.name;
        if (name.rfind("RLIMIT_", 0) == 0 || name.rfind("rlimit_", 0) == 0) {
            name = name.substr(7);
        }
        for (auto& c : name) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        auto it = kResources.find(name);
        if (it == kResources.end()) {
            return base::invalid_argument("unknown rlimit `{}`", limit.name);
        }
        struct rlimit value;
        value.rlim_cur = limit.soft == UINT64_MAX ? RLIM_INFINITY : limit.soft;
        value.rlim_max = limit.hard == UINT64_MAX ? RLIM_INFINITY : limit.hard;
        if (::setrlimit(it->second, &value) != 0) {
            return base::errno_error("setrlimit {} {}:{}", name, limit.soft, limit.hard);
        }
    }
    return base::ok();
}

base::Result<void> close_extra_fds(ChildContext&) {
    // 28. Every fd above stderr is marked close-on-exec: the payload inherits
    //     stdin/stdout/stderr only, never a host directory or socket. (Marked,
    //     not closed, so the error channel survives until execve succeeds.)
    if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        return base::errno_error("close_range(3, ∞, CLOEXEC)");
    }
    return base::ok();
}

base::Result<void> exec_payload(ChildContext& ctx) {
    const auto& args = ctx.spec->args;
    if (args.empty() || args[0].empty()) {
        return base::invalid_argument("no command to run");
    }
    std::vector<char*> argv;
    for (const auto& arg : args) {
        argv.push_back(const_cast<char*>(arg.c_str()));
    }
    argv.push_back(nullptr);
    std::vector<char*> envp;
    std::string path_value;
    for (const auto& entry : ctx.env) {
        envp.push_back(const_cast<char*>(entry.c_str()));
        if (entry.rfind("PATH=", 0) == 0) {
            path_value = entry.substr(5);
        }
    }
    envp.push_back(nullptr);
    // 30. exec. A name without a slash is searched in the *container's* PATH.
    if (args[0].find('/') != std::string::npos) {
        ::execve(args[0].c_str(), argv.data(), envp.data());
        return base::errno_error("executing `{}`", args[0]);
    }
    if (path_value.empty()) {
        path_value = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    }
    int saved = ENOENT;
    size_t start = 0;
    while (start <= path_value.size()) {
        size_t end = path_value.find(':', start);
        if (end == std::string::npos) {
            end = path_value.size();
        }
        std::string dir = path_value.substr(start, end - start);
        std::string candidate = (dir.empty() ? "." : dir) + "/" + args[0];
        ::execve(candidate.c_str(), argv.data(), envp.data());
        if (errno != ENOENT && errno != ENOTDIR) {
            saved = errno;  // e.g. EACCES: keep looking, but report this one
        }
        start = end + 1;
    }
    errno = saved;
    if (saved == ENOENT) {
        return base::not_found("executable `{}` not found in the container's PATH ({})", args[0],
                               path_value);
    }
    return base::errno_error("executing `{}`", args[0]);
}

}  // namespace locald::ns::internal
