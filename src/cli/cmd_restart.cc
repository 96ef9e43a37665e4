// `locald restart [SERVICE…]`.
#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/ipc_client.h"

namespace locald::cli {

const char kRestartHelp[] =
    "usage: locald restart [SERVICE…]\n"
    "\n"
    "Restarts the named services and resets their restart counters (a `failed`\n"
    "service gets a fresh max_restarts budget). Returns when they are ready.\n"
    "\n"
    "SERVICE is `name` (resolved in the project of the current directory) or\n"
    "`project:name`. Without SERVICE: every service of the current directory's project.\n";

int run_restart(std::span<const std::string> args) {
    auto parsed = parse_args(args, {});
    if (!parsed) {
        return report_usage("restart", parsed.error());
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
        *client, "restart",
        base::Json::object({{"names", std::move(names)}, {"cwd", current_dir()}}));
}

}  // namespace locald::cli
