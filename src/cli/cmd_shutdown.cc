// `locald shutdown`: stop every service and the daemon.
#include <cstdio>

#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/ipc_client.h"

namespace locald::cli {

const char kShutdownHelp[] =
    "usage: locald shutdown\n"
    "\n"
    "Stops every service of every project (dependents first, each with its\n"
    "stop_signal and stop_timeout, then SIGKILL), marks the projects down so the\n"
    "next daemon does not restart them, and waits until the daemon has exited.\n"
    "Without a running daemon it does nothing and succeeds.\n";

int run_shutdown(std::span<const std::string> args) {
    if (!args.empty()) {
        return report_usage("shutdown",
                            base::invalid_argument("unexpected argument `{}`", args.front()));
    }
    auto paths = daemon_paths();
    if (!paths) {
        return report_error(paths.error());
    }
    auto client = connect_daemon(false);
    if (!client) {
        if (client.error().kind() == base::ErrorKind::Unavailable ||
            client.error().kind() == base::ErrorKind::NotFound) {
            std::puts("no daemon is running");
            return kExitOk;
        }
        return report_error(client.error());
    }
    base::UniqueFd daemon_process = open_daemon_pidfd(*paths);
    auto answer = client->call("shutdown", base::Json::object());
    if (!answer && answer.error().kind() != base::ErrorKind::Unavailable) {
        return report_error(answer.error());
    }
    if (auto exited = wait_for_daemon_exit(*paths, daemon_process); !exited) {
        return report_error(exited.error());
    }
    std::puts("daemon stopped");
    return kExitOk;
}

}  // namespace locald::cli
