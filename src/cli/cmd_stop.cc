// `locald stop [SERVICE…]`.
#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/ipc_client.h"

namespace locald::cli {

const char kStopHelp[] =
    "usage: locald stop [SERVICE…]\n"
    "\n"
    "Stops the named services: stop_signal to each service's process group and\n"
    "everything it started, SIGKILL after stop_timeout. Returns once nothing of them\n"
    "is left. Services that depend on them keep running.\n"
    "\n"
    "SERVICE is `name` (resolved in the project of the current directory) or\n"
    "`project:name`. Without SERVICE: every service of the current directory's project.\n";

int run_stop(std::span<const std::string> args) {
    auto parsed = parse_args(args, {});
    if (!parsed) {
        return report_usage("stop", parsed.error());
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
        *client, "stop", base::Json::object({{"names", std::move(names)}, {"cwd", current_dir()}}));
}

}  // namespace locald::cli
