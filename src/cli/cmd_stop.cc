// `locald stop [SERVICE…]`.
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
    return run_service_names_command("stop", args);
}

}  // namespace locald::cli
