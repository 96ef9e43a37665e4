// locald-daemon — the daemon alone: base, config, host and daemon, nothing of
// the registry client, unpacker or container launcher, so the process that
// stays up all day maps a handful of libraries instead of ~50. The CLI starts
// it (ipc_client.cc, daemon::daemon_command()) when it sits next to `locald`;
// `locald daemon` still runs the same code inside the full binary.
#include <clocale>
#include <cstdio>
#include <cstring>

#include "base/paths.h"
#include "daemon/daemon.h"

int main(int argc, char** argv) {
    std::setlocale(LC_ALL, "C");
    // `locald-daemon` or `locald-daemon daemon` (the CLI's argv shape).
    if (argc > 2 || (argc == 2 && std::strcmp(argv[1], "daemon") != 0)) {
        std::fprintf(stderr,
                     "usage: locald-daemon\n"
                     "Runs the locald daemon in the foreground (see `locald daemon --help`).\n");
        return 2;
    }
    auto paths = locald::base::Paths::from_env();
    if (!paths) {
        std::fprintf(stderr, "locald-daemon: error: %s\n", paths.error().to_string().c_str());
        return 1;
    }
    return locald::daemon::run_daemon(locald::daemon::DaemonPaths::from(*paths));
}
