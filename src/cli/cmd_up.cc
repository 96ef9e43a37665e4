// `locald up [PATH] [SERVICE…] [-f|--follow] [--foreground]`.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "base/event_loop.h"
#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/ipc_client.h"
#include "cli/output.h"
#include "config/spec.h"
#include "daemon/service_manager.h"
#include "host/process_tree.h"

namespace locald::cli {

const char kUpHelp[] =
    "usage: locald up [PATH] [SERVICE…] [-f|--follow] [--foreground]\n"
    "\n"
    "Loads the project in PATH (default: the current directory; `locald.toml`\n"
    "and/or `Procfile`, plus `.env`) and starts its services — or only the named\n"
    "ones and what they depend on — in dependency order: a service starts once its\n"
    "`depends_on` conditions hold (started, healthy, completed,\n"
    "completed_successfully). Shows each service's progress (pending, starting,\n"
    "ready or failed, with times) and returns when all are ready; the exit status\n"
    "is 1 when any failed (the reason is printed and shown by `locald status`).\n"
    "A config error stops everything before anything starts (exit status 3).\n"
    "\n"
    "On a project that is already up, `up` re-applies it: unchanged services are\n"
    "left alone, changed ones are restarted, removed ones are stopped.\n"
    "\n"
    "Services run in the daemon with the environment of this shell as the base\n"
    "(captured at the project's first `up`), each under its own PTY.\n"
    "\n"
    "  -f, --follow     then stream the services' logs; Ctrl-C detaches (the\n"
    "                   services keep running)\n"
    "      --foreground run without a daemon, foreman-style: prefixed logs here,\n"
    "                   Ctrl-C stops everything (a second Ctrl-C kills at once);\n"
    "                   the exit status is 0 when every service ended with 0,\n"
    "                   1 when one failed, 130 after Ctrl-C; refused while the\n"
    "                   daemon runs the project (`locald down` first)\n";

namespace {

bool looks_like_project_dir(const std::string& arg) {
    if (arg.find('/') != std::string::npos || arg == "." || arg == "..") {
        return true;
    }
    struct stat st {};
    if (::stat(arg.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        return false;
    }
    return ::access((arg + "/locald.toml").c_str(), F_OK) == 0 ||
           ::access((arg + "/Procfile").c_str(), F_OK) == 0;
}

// A project file without a single service: `up` has nothing to do, which
// is almost always a mistake (an empty Procfile, a toml with only [env]).
void note_if_no_services(const std::string& dir) {
    auto project = config::load_project(dir);
    if (project && project->services.empty()) {
        std::fprintf(stderr,
                     "locald: note: project `%s` (%s) defines no services, so nothing was "
                     "started: add `[service.NAME]` tables with a `command` to locald.toml, or "
                     "`NAME: command` lines to a Procfile\n",
                     project->name.c_str(), project->dir.c_str());
    }
}

// ------------------------------------------------------------ --foreground

// When the daemon already runs the project in `dir`, a foreground run would
// start a second copy of every service (overmind refuses the same way): the
// names of its services that are not down, or nothing (no daemon, not loaded).
std::vector<std::string> running_in_daemon(const std::string& dir) {
    auto project = config::load_project(dir);
    if (!project) {
        return {};  // the foreground run reports the config error itself
    }
    auto client = connect_daemon(false);
    if (!client) {
        return {};
    }
    auto answer = client->call(
        "status", base::Json::object({{"names", base::Json::array()}, {"cwd", current_dir()}}));
    std::vector<std::string> names;
    const base::Json* services = answer ? answer->find("services") : nullptr;
    if (services == nullptr || !services->is_array()) {
        return {};
    }
    for (const auto& service : services->as_array()) {
        const base::Json* name = service.find("name");
        const base::Json* owner = service.find("project");
        const base::Json* state = service.find("state");
        if (name == nullptr || owner == nullptr || state == nullptr || !name->is_string() ||
            !owner->is_string() || !state->is_string() || owner->as_string() != project->name) {
            continue;
        }
        const std::string& current = state->as_string();
        if (current != "stopped" && current != "exited" && current != "failed") {
            names.push_back(project->name + ":" + name->as_string());
        }
    }
    return names;
}

int run_foreground(const std::string& dir, const std::vector<std::string>& only) {
    if (auto running = running_in_daemon(dir); !running.empty()) {
        std::string list;
        for (const auto& name : running) {
            list += fmt::format("{}{}", list.empty() ? "" : ", ", name);
        }
        return report_error(base::failed_precondition(
            "the daemon already runs this project ({}); a foreground run would start a second "
            "copy of each service. Stop it first with `locald down {}`, or follow it with "
            "`locald logs -f`",
            list, dir));
    }
    // Ctrl-C from the first service spawned on must reach the handler below
    // (installed once the logs are wired up), not kill this process and
    // orphan the services: hold it pending until the signalfd reads it. The
    // services start with an empty mask (the PTY spawn resets it).
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    auto loop_result = base::EventLoop::create();
    if (!loop_result) {
        return report_error(loop_result.error());
    }
    base::EventLoop loop = loop_result.release_value();
    (void)host::become_subreaper();
    auto manager_result = daemon::ServiceManager::create(loop, daemon::ManagerOptions{});
    if (!manager_result) {
        return report_error(manager_result.error());
    }
    auto manager = manager_result.release_value();
    auto targets = manager->apply(dir, config::current_environment(), only);
    if (!targets) {
        return report_error(targets.error());
    }
    if (manager->keys().empty()) {
        note_if_no_services(dir);
    }
    bool colour = use_colour(1);
    std::vector<std::string> names;
    for (const auto& key : manager->keys()) {
        names.push_back(key.qualified());
    }
    LogPrinter printer(colour, names);
    auto print_record = [&](const daemon::ServiceKey& key, const host::LogRecord& record) {
        std::string_view stream = record.stream == host::LogStream::Output   ? "out"
                                  : record.stream == host::LogStream::System ? "sys"
                                                                             : "gap";
        printer.print(base::Json::object(
            {{"service", key.qualified()},
             {"time",
              std::chrono::duration_cast<std::chrono::milliseconds>(record.time.time_since_epoch())
                  .count()},
             {"stream", stream},
             {"text", record.text}}));
    };

    struct Stream {
        daemon::ServiceKey key;
        std::unique_ptr<host::LogSubscription> subscription;
    };
    std::vector<Stream> streams;
    bool drain_posted = false;
    std::function<void()> drain = [&] {
        drain_posted = false;
        std::vector<host::LogRecord> records;
        for (auto& stream : streams) {
            records.clear();
            stream.subscription->drain(records);
            for (const auto& record : records) {
                print_record(stream.key, record);
            }
        }
        std::fflush(stdout);
    };
    for (const auto& key : manager->keys()) {
        host::Supervisor* supervisor = manager->supervisor(key);
        if (supervisor == nullptr) {
            continue;
        }
        for (const auto& record : supervisor->logs().tail(0)) {
            print_record(key, record);
        }
        streams.push_back({key, supervisor->logs().subscribe(100'000, [&] {
                               if (!drain_posted) {
                                   drain_posted = true;
                                   loop.post([&] { drain(); });
                               }
                           })});
    }
    // What came before the subscriptions goes out now: through a pipe (`| tee`)
    // stdout is block-buffered, and a quiet service would hide its start.
    std::fflush(stdout);

    int interrupts = 0;
    int exit_code = kExitOk;
    bool stopping = false;
    auto check_done = [&] {
        bool all_done = true;
        bool any_failed = false;
        for (const auto& view : manager->views()) {
            bool over = !view.waiting && (view.state == host::ServiceState::Exited ||
                                          view.state == host::ServiceState::Failed ||
                                          view.state == host::ServiceState::Stopped);
            if (!over) {
                all_done = false;
            }
            if (daemon::is_failure(view)) {
                any_failed = true;
            }
        }
        if (stopping ? manager->all_down() : all_done) {
            if (!stopping) {
                exit_code = any_failed ? kExitFailure : kExitOk;
            }
            loop.post([&] {
                drain();
                loop.stop();
            });
        }
    };
    manager->add_listener([&](const daemon::ServiceView& view) {
        if (!view.waiting && (view.state == host::ServiceState::Failed) && !view.reason.empty()) {
            // The supervisor logs exits itself; a refusal to start (dependency,
            // port) is only known here.
        }
        loop.post(check_done);
    });
    auto on_signal = [&](const signalfd_siginfo&) {
        ++interrupts;
        if (interrupts == 1) {
            std::fputs("\nlocald: stopping every service (Ctrl-C again to kill them now)\n",
                       stderr);
            stopping = true;
            exit_code = kExitCancelled;
            manager->stop_all(true);
            loop.post(check_done);
        } else {
            exit_code = kExitCancelled;
            loop.stop();  // destroying the supervisors SIGKILLs what is left
        }
    };
    (void)loop.add_signal(SIGINT, on_signal);
    (void)loop.add_signal(SIGTERM, on_signal);
    loop.post(check_done);
    if (auto ran = loop.run(); !ran) {
        return report_error(ran.error());
    }
    streams.clear();
    manager.reset();
    std::fflush(stdout);
    return exit_code;
}

}  // namespace

int run_up(std::span<const std::string> args) {
    static constexpr OptionSpec kOptions[] = {{"follow", 'f'}, {"foreground"}};
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("up", parsed.error());
    }
    std::vector<std::string> positional = parsed->positional();
    std::string dir = current_dir();
    if (!positional.empty() && looks_like_project_dir(positional.front())) {
        auto resolved = absolute_dir(positional.front());
        if (!resolved) {
            return report_error(resolved.error());
        }
        dir = *resolved;
        positional.erase(positional.begin());
    }
    if (parsed->has("foreground")) {
        if (parsed->has("follow")) {
            return report_usage(
                "up", base::invalid_argument("--follow and --foreground do not go together "
                                             "(--foreground always shows the logs)"));
        }
        return run_foreground(dir, positional);
    }
    base::Json services = base::Json::array();
    for (const auto& name : positional) {
        services.push_back(name);
    }
    auto client = connect_daemon();
    if (!client) {
        return report_error(client.error());
    }
    auto begin = std::chrono::steady_clock::now();
    base::Json result;
    int code = call_with_progress(*client, "up",
                                  base::Json::object({{"dir", dir},
                                                      {"services", std::move(services)},
                                                      {"env", environment_json()},
                                                      {"cwd", current_dir()}}),
                                  &result);
    if (const auto* list = result.find("services"); code == kExitOk && positional.empty() && list &&
                                                    list->is_array() && list->as_array().empty()) {
        note_if_no_services(dir);
    }
    if (!parsed->has("follow") || (code != kExitOk && code != kExitFailure)) {
        return code;
    }
    std::vector<std::string> qualified;
    base::Json names = base::Json::array();
    if (const auto* list = result.find("services"); list && list->is_array()) {
        for (const auto& s : list->as_array()) {
            std::string name = s.find("project")->as_string() + ":" + s.find("name")->as_string();
            qualified.push_back(name);
            names.push_back(name);
        }
    }
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - begin)
                       .count();
    std::fputs("locald: following the logs; Ctrl-C detaches (services keep running)\n", stderr);
    print_logs(*client,
               base::Json::object({{"names", std::move(names)},
                                   {"cwd", current_dir()},
                                   {"follow", true},
                                   {"since_ms", static_cast<int64_t>(elapsed + 1000)}}),
               qualified, use_colour(1));
    return code;
}

}  // namespace locald::cli
