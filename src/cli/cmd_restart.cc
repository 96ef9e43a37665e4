// `locald restart [SERVICE…]`.
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
    return run_service_names_command("restart", args);
}

}  // namespace locald::cli
