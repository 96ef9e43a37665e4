// `locald start [SERVICE…]`.
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/ipc_client.h"

namespace locald::cli {

const char kStartHelp[] =
    "usage: locald start [SERVICE…]\n"
    "\n"
    "Starts the named services (and, first, the services they depend on, with\n"
    "the same readiness gating as `up`). Returns when they are ready; exit status 1\n"
    "when one failed.\n"
    "\n"
    "SERVICE is `name` (resolved in the project of the current directory) or\n"
    "`project:name`. Without SERVICE: every service of the current directory's project.\n";

int run_start(std::span<const std::string> args) {
    return run_service_names_command("start", args);
}

}  // namespace locald::cli
