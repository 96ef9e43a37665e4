// `locald logs [SERVICE…] [-f] [-n N] [--since D] [--no-color]`.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/ipc_client.h"
#include "cli/output.h"
#include "config/spec.h"

namespace locald::cli {

const char kLogsHelp[] =
    "usage: locald logs [SERVICE…] [-f] [-n N] [--since D] [--no-color]\n"
    "\n"
    "Prints the services' recent output (each service keeps its last 10,000 lines\n"
    "in memory; older output is in <state>/logs/<project>/<service>.log), merged in\n"
    "time order, as `HH:MM:SS name | line`, then exits. Lines locald adds about a\n"
    "service (exit codes, probe failures, restarts) are marked [locald].\n"
    "\n"
    "  -f, --follow     keep printing new lines until Ctrl-C (services keep running)\n"
    "  -n, --lines N    only the last N lines (of all the selected services together)\n"
    "      --since D    only lines from the last D (500ms, 30s, 5m, 2h, 1d; a bare\n"
    "                   number is seconds)\n"
    "      --no-color   no colours (the default when stdout is not a terminal)\n"
    "\n"
    "Without SERVICE: every service of the current directory's project, or of all\n"
    "projects outside a project dir. A reader that falls behind gets a gap marker\n"
    "(`… N lines dropped`); services are never slowed down by a slow reader.\n";

namespace {

void on_interrupt(int) {}

// The name of the project whose directory holds the current directory (the
// nearest one with a `locald.toml` or `Procfile`, as the daemon resolves
// names), if it loads.
std::optional<std::string> project_here() {
    std::string dir = current_dir();
    while (true) {
        if (::access((dir + "/locald.toml").c_str(), F_OK) == 0 ||
            ::access((dir + "/Procfile").c_str(), F_OK) == 0) {
            auto project = config::load_project(dir);
            return project ? std::optional<std::string>(project->name) : std::nullopt;
        }
        size_t slash = dir.rfind('/');
        if (slash == std::string::npos || dir == "/") {
            return std::nullopt;
        }
        dir = slash == 0 ? "/" : dir.substr(0, slash);
    }
}

}  // namespace

int print_logs(daemon::Client& client, const base::Json& params,
               const std::vector<std::string>& qualified, bool colour) {
    LogPrinter printer(colour, qualified);
    bool follow = false;
    if (const auto* f = params.find("follow"); f && f->is_bool()) {
        follow = f->as_bool();
    }
    if (follow) {
        // Ctrl-C ends the blocking read (no SA_RESTART) instead of killing us
        // mid-line; the services keep running.
        struct sigaction action {};
        action.sa_handler = on_interrupt;
        sigemptyset(&action.sa_mask);
        ::sigaction(SIGINT, &action, nullptr);
        ::sigaction(SIGTERM, &action, nullptr);
    }
    auto answer = client.call("logs", params, [&](const base::Json& event) {
        if (const auto* lines = event.find("lines"); lines && lines->is_array()) {
            for (const auto& line : lines->as_array()) {
                printer.print(line);
            }
            if (follow) {
                std::fflush(stdout);
            }
        }
        return true;
    });
    std::fflush(stdout);
    if (!answer) {
        if (answer.error().kind() == base::ErrorKind::Cancelled) {
            return kExitOk;
        }
        return report_error(answer.error());
    }
    return kExitOk;
}

int run_logs(std::span<const std::string> args) {
    static constexpr OptionSpec kOptions[] = {
        {"follow", 'f'}, {"lines", 'n', true}, {"since", 0, true}, {"no-color"}, {"no-colour"}};
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("logs", parsed.error());
    }
    base::Json params = base::Json::object();
    base::Json names = base::Json::array();
    for (const auto& name : parsed->positional()) {
        names.push_back(name);
    }
    params.set("names", names);
    params.set("cwd", current_dir());
    params.set("follow", parsed->has("follow"));
    if (auto lines = parsed->value("lines")) {
        char* end = nullptr;
        long n = std::strtol(lines->c_str(), &end, 10);
        if (end == lines->c_str() || *end != '\0' || n < 0) {
            return report_usage("logs",
                                base::invalid_argument("-n wants a count, got `{}`", *lines));
        }
        params.set("tail", static_cast<int64_t>(n));
    }
    if (auto since = parsed->value("since")) {
        std::int64_t ms = parse_since(*since);
        if (ms < 0) {
            return report_usage(
                "logs", base::invalid_argument("--since wants a duration like 30s or 5m, got `{}`",
                                               *since));
        }
        params.set("since_ms", ms);
    }
    bool colour = !parsed->has("no-color") && !parsed->has("no-colour") && use_colour(1);
    auto client = connect_daemon();
    if (!client) {
        return report_error(client.error());
    }
    // The names first, so columns line up from the first line.
    auto status =
        client->call("status", base::Json::object({{"names", names}, {"cwd", current_dir()}}));
    if (!status) {
        return report_error(status.error());
    }
    std::vector<std::string> qualified;
    if (const auto* services = status->find("services"); services && services->is_array()) {
        for (const auto& s : services->as_array()) {
            qualified.push_back(s.find("project")->as_string() + ":" + s.find("name")->as_string());
        }
    }
    if (names.size() == 0) {
        // `status` lists every project, but without SERVICE the daemon sends
        // only the current directory's project: name and pad for that one, or
        // lines read `shop:web` padded to another project's longest name.
        if (auto here = project_here(); here) {
            std::vector<std::string> mine;
            for (const auto& name : qualified) {
                if (name.compare(0, here->size() + 1, *here + ":") == 0) {
                    mine.push_back(name);
                }
            }
            if (!mine.empty()) {
                qualified = std::move(mine);
            }
        }
    }
    return print_logs(*client, params, qualified, colour);
}

}  // namespace locald::cli
