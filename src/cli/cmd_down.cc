// `locald down [PATH]`: stop a project's services.
#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/ipc_client.h"

namespace locald::cli {

const char kDownHelp[] =
    "usage: locald down [PATH]\n"
    "\n"
    "Stops every service of the project in PATH (default: the current directory),\n"
    "dependents before their dependencies, and marks the project down so a daemon\n"
    "restart does not bring it back. Assigned ports are kept for the next `up`.\n";

int run_down(std::span<const std::string> args) {
    auto parsed = parse_args(args, {});
    if (!parsed) {
        return report_usage("down", parsed.error());
    }
    if (parsed->positional().size() > 1) {
        return report_usage("down", base::invalid_argument("expected at most one PATH"));
    }
    std::string dir = current_dir();
    if (!parsed->positional().empty()) {
        auto resolved = absolute_dir(parsed->positional().front());
        if (!resolved) {
            return report_error(resolved.error());
        }
        dir = *resolved;
    }
    auto client = connect_daemon();
    if (!client) {
        return report_error(client.error());
    }
    return call_with_progress(*client, "down", base::Json::object({{"dir", dir}}));
}

}  // namespace locald::cli
