// `locald daemon`: the daemon in the foreground (other commands start it
// detached when needed).
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/ipc_client.h"
#include "daemon/daemon.h"

namespace locald::cli {

const char kDaemonHelp[] =
    "usage: locald daemon\n"
    "\n"
    "Runs the locald daemon in the foreground, logging to stderr. Every other\n"
    "command starts it in the background when it is not running (its log is then\n"
    "<state>/daemon.log), as `locald-daemon` from the directory of `locald` when\n"
    "that smaller executable is there. One daemon runs per LOCALD_HOME; a second\n"
    "one exits with status 4. SIGTERM or Ctrl-C stops every service and exits; the\n"
    "services come back with the next daemon. `locald shutdown` stops it and marks\n"
    "everything down.\n";

int run_daemon(std::span<const std::string> args) {
    if (!args.empty()) {
        return report_usage("daemon",
                            base::invalid_argument("unexpected argument `{}`", args.front()));
    }
    auto paths = daemon_paths();
    if (!paths) {
        return report_error(paths.error());
    }
    auto served = daemon::serve_daemon(*paths);
    if (!served) {
        int code = report_error(served.error());
        // Another daemon already serves this home: "not available", as documented.
        return served.error().kind() == base::ErrorKind::AlreadyExists ? kExitUnavailable : code;
    }
    return *served;
}

}  // namespace locald::cli
