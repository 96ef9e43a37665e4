#include "cli/ipc_client.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "base/paths.h"
#include "base/sys.h"
#include "base/version.h"
#include "cli/args.h"
#include "cli/command.h"
#include "cli/output.h"
#include "daemon/daemon.h"

extern char** environ;

namespace locald::cli {

namespace {

using namespace std::chrono_literals;

std::string log_tail(const std::string& path) {
    auto text = base::read_file(path, 16u << 20);
    if (!text || text->empty()) {
        return "";
    }
    size_t start = text->size();
    for (int lines = 0; lines < 8 && start > 0; ++lines) {
        start = text->rfind('\n', start - 2);
        if (start == std::string::npos) {
            start = 0;
            break;
        }
        ++start;
    }
    return text->substr(start);
}

// Which executable runs the daemon (locald-daemon next to us, else ourselves)
// and the build id its `hello` will report. Resolved once per CLI run.
const daemon::DaemonCommand& daemon_command() {
    static const daemon::DaemonCommand command = daemon::daemon_command();
    return command;
}

base::Result<void> spawn_daemon(const daemon::DaemonPaths& paths) {
    const daemon::DaemonCommand& command = daemon_command();
    // Built before fork: only async-signal-safe calls in the child.
    std::vector<char*> argv;
    for (const auto& arg : command.argv) {
        argv.push_back(const_cast<char*>(arg.c_str()));
    }
    argv.push_back(nullptr);
    TRY(base::ensure_private_dir(paths.run_dir));
    TRY(base::ensure_private_dir(paths.state_dir));
    base::UniqueFd log =
        TRY(base::open_file(paths.log_file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0600));
    base::UniqueFd null = TRY(base::open_file("/dev/null", O_RDWR));
    pid_t middle = ::fork();
    if (middle < 0) {
        return base::errno_error("forking the daemon");
    }
    if (middle == 0) {
        // Detach: new session (no controlling terminal, no SIGHUP from ours),
        // then fork again so the daemon is not a session leader and is not our
        // child (the CLI must not have to reap it).
        ::setsid();
        pid_t daemon_pid = ::fork();
        if (daemon_pid != 0) {
            ::_exit(daemon_pid < 0 ? 1 : 0);
        }
        ::dup2(null.get(), 0);
        ::dup2(log.get(), 1);
        ::dup2(log.get(), 2);
        sigset_t empty;
        sigemptyset(&empty);
        ::sigprocmask(SIG_SETMASK, &empty, nullptr);
        ::signal(SIGINT, SIG_DFL);
        ::signal(SIGPIPE, SIG_DFL);
        ::close_range(3, ~0u, 0);
        ::execv(command.path.c_str(), argv.data());
        ::_exit(127);
    }
    int status = 0;
    while (::waitpid(middle, &status, 0) < 0 && errno == EINTR) {
    }
    return base::ok();
}

base::Result<daemon::Client> wait_for_daemon(const daemon::DaemonPaths& paths) {
    auto deadline = std::chrono::steady_clock::now() + 15s;
    for (;;) {
        auto client = daemon::Client::connect(paths.socket);
        if (client) {
            return client;
        }
        if (std::chrono::steady_clock::now() > deadline) {
            std::string tail = log_tail(paths.log_file);
            return base::unavailable("the daemon did not start within 15s (log `{}`){}{}",
                                     paths.log_file, tail.empty() ? "" : ":\n", tail);
        }
        // A fresh daemon listens within a few ms; a coarse poll would add up to
        // its period to every cold start. Connecting is two cheap syscalls.
        std::this_thread::sleep_for(1ms);
    }
}

// Waits until no daemon holds the lock (the old one fully exited).
base::Result<void> wait_for_lock_release(const daemon::DaemonPaths& paths) {
    auto deadline = std::chrono::steady_clock::now() + 150s;
    for (;;) {
        auto fd = base::open_file(paths.lock, O_RDWR);
        if (!fd) {
            return base::ok();
        }
        if (::flock(fd->get(), LOCK_EX | LOCK_NB) == 0) {
            return base::ok();  // closing the fd releases it
        }
        if (std::chrono::steady_clock::now() > deadline) {
            return base::unavailable("the old daemon did not exit");
        }
        std::this_thread::sleep_for(20ms);
    }
}

base::Result<base::Json> hello(daemon::Client& client) {
    return client.call("hello", base::Json::object({{"version", base::kVersion},
                                                    {"protocol", daemon::kProtocolVersion},
                                                    {"build_id", daemon_command().build_id}}));
}

bool same_build(const base::Json& answer) {
    const base::Json* build = answer.find("build_id");
    const base::Json* protocol = answer.find("protocol");
    return build && build->is_string() && build->as_string() == daemon_command().build_id &&
           protocol && protocol->is_int() && protocol->as_int() == daemon::kProtocolVersion;
}

}  // namespace

base::Result<daemon::DaemonPaths> daemon_paths() {
    base::Paths paths = TRY(base::Paths::from_env());
    return daemon::DaemonPaths::from(paths);
}

base::Result<daemon::Client> connect_daemon(bool autostart) {
    daemon::DaemonPaths paths = TRY(daemon_paths());
    auto client = daemon::Client::connect(paths.socket);
    if (client) {
        auto answer = hello(*client);
        if (answer && same_build(*answer)) {
            return client;
        }
        if (answer) {
            if (!autostart) {
                return client;  // `shutdown` talks to whatever build runs
            }
            std::fprintf(stderr,
                         "locald: the running daemon is another build (%s); restarting it\n",
                         answer->find("version") && answer->find("version")->is_string()
                             ? answer->find("version")->as_string().c_str()
                             : "unknown");
            (void)client->call("shutdown", base::Json::object({{"restart", true}}));
        }
        TRY(wait_for_lock_release(paths));
    } else if (!autostart) {
        return client.release_error();
    } else if (client.error().kind() != base::ErrorKind::Unavailable &&
               client.error().kind() != base::ErrorKind::NotFound) {
        return client.release_error();
    }
    TRY(spawn_daemon(paths));
    daemon::Client fresh = TRY(wait_for_daemon(paths));
    TRY(hello(fresh));
    return fresh;
}

base::UniqueFd open_daemon_pidfd(const daemon::DaemonPaths& paths) {
    auto text = base::read_file(paths.pid_file, 4096);  // "<pid> <build id>\n"
    if (!text) {
        return base::UniqueFd();
    }
    long pid = std::strtol(text->c_str(), nullptr, 10);
    if (pid <= 0) {
        return base::UniqueFd();
    }
    return base::UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0)));
}

base::Result<void> wait_for_daemon_exit(const daemon::DaemonPaths& paths,
                                        const base::UniqueFd& pidfd) {
    TRY(wait_for_lock_release(paths));
    if (pidfd) {
        pollfd exited{pidfd.get(), POLLIN, 0};
        while (::poll(&exited, 1, 10'000) < 0 && errno == EINTR) {
        }
    }
    return base::ok();
}

namespace {

std::string json_text(const base::Json& object, std::string_view key) {
    const base::Json* value = object.find(key);
    return value && value->is_string() ? value->as_string() : std::string();
}

int64_t json_int(const base::Json& object, std::string_view key, int64_t fallback) {
    const base::Json* value = object.find(key);
    return value && value->is_int() ? value->as_int() : fallback;
}

// The daemon stopped waiting for a service that is not up (see "When up
// returns" in docs/manual/commands.md): say why, with its last output.
void report_not_up(const base::Json& service) {
    const base::Json* not_up = service.find("not_up");
    if (not_up == nullptr || !not_up->is_object()) {
        return;
    }
    std::string name = json_text(service, "project") + ":" + json_text(service, "name");
    std::string why = json_text(*not_up, "why");
    if (why == "blocked") {
        std::fprintf(stderr, "locald: %s not started: it depends on %s, which is restarting\n",
                     name.c_str(), json_text(*not_up, "dependency").c_str());
        return;
    }
    int64_t attempt = json_int(*not_up, "attempt", 0);
    int64_t max = json_int(*not_up, "max_restarts", -1);
    std::string of = max >= 0 ? fmt::format("restart {} of {}", attempt, max)
                              : fmt::format("restart {}, no limit", attempt);
    std::fprintf(stderr,
                 "locald: %s exited before it was up: %s; restarting under its restart policy "
                 "(%s, next in %s) — follow it with `locald logs -f %s`\n",
                 name.c_str(), json_text(*not_up, "exit").c_str(), of.c_str(),
                 short_duration(json_int(*not_up, "next_restart_ms", 0)).c_str(), name.c_str());
    if (const base::Json* lines = not_up->find("last_lines"); lines && lines->is_array()) {
        for (const auto& line : lines->as_array()) {
            if (line.is_string()) {
                std::fprintf(stderr, "  | %s\n", line.as_string().c_str());
            }
        }
    }
}

}  // namespace

int call_with_progress(daemon::Client& client, std::string_view method, const base::Json& params,
                       base::Json* result) {
    bool tty = ::isatty(1);
    Progress progress(tty, use_colour(1));
    auto answer = client.call(method, params, [&](const base::Json& event) {
        if (const base::Json* service = event.find("service"); service && service->is_object()) {
            progress.update(*service);
        }
        return true;
    });
    if (!answer) {
        return report_error(answer.error());
    }
    if (const base::Json* services = answer->find("services"); services && services->is_array()) {
        for (const auto& service : services->as_array()) {
            progress.update(service);
        }
    }
    progress.done();
    if (const base::Json* services = answer->find("services"); services && services->is_array()) {
        for (const auto& service : services->as_array()) {
            report_not_up(service);
        }
    }
    int failed = 0;
    if (const base::Json* f = answer->find("failed"); f && f->is_int()) {
        failed = static_cast<int>(f->as_int());
    }
    if (result != nullptr) {
        *result = answer.release_value();
    }
    return failed > 0 ? kExitFailure : kExitOk;
}

base::Json environment_json() {
    base::Json env = base::Json::object();
    for (char** entry = environ; entry && *entry; ++entry) {
        std::string_view text(*entry);
        size_t eq = text.find('=');
        if (eq == std::string_view::npos || eq == 0) {
            continue;
        }
        env.set(std::string(text.substr(0, eq)), daemon::sanitize_utf8(text.substr(eq + 1)));
    }
    return env;
}

std::string current_dir() {
    char buffer[PATH_MAX];
    if (::getcwd(buffer, sizeof(buffer)) == nullptr) {
        return "/";
    }
    char resolved[PATH_MAX];
    if (::realpath(buffer, resolved) != nullptr) {
        return resolved;
    }
    return buffer;
}

base::Result<std::string> absolute_dir(const std::string& path) {
    char resolved[PATH_MAX];
    if (::realpath(path.c_str(), resolved) == nullptr) {
        return base::errno_error("resolving `{}`", path);
    }
    return std::string(resolved);
}

int run_service_names_command(std::string_view method, std::span<const std::string> args) {
    auto parsed = parse_args(args, {});
    if (!parsed) {
        return report_usage(method, parsed.error());
    }
    base::Json names = base::Json::array();
    for (const auto& name : parsed->positional()) {
        names.push_back(name);
    }
    auto client = connect_daemon();
    if (!client) {
        return report_error(client.error());
    }
    return call_with_progress(
        *client, method, base::Json::object({{"names", std::move(names)}, {"cwd", current_dir()}}));
}

}  // namespace locald::cli
