// ns/launcher.h — run one container in the foreground, rootless.
//
// Contract: `Launcher::run(spec)` creates the container (user, mount, pid,
// uts, ipc, cgroup and — for network none — net namespaces), stays the
// parent of its PID 1 (a small init that reaps orphans), forwards SIGTERM,
// SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH to the payload, and
// returns the payload's exit status (128+N when a signal N killed it).
// Errors in setup — in this process or inside the container before exec —
// are returned as an Error naming the step, the path and the errno.
//
// The calling process must be single-threaded (the daemon never calls this:
// it runs `locald __launch SPEC.json`). It blocks the forwarded signals for
// the duration of the call. Warnings (single id mapping, limits not applied)
// go to `warn` once each.
// Depends on base only; knows nothing about images.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "base/error.h"
#include "ns/spec.h"

namespace locald::ns {

struct LaunchOptions {
    // Receives human-readable warnings; default: "locald: warning: …" on stderr.
    std::function<void(const std::string&)> warn;
};

// Docker's exit status when the setup went fine but the command could not be
// executed: 127 when it was not found, 126 otherwise (not executable, …).
// nullopt for every other error.
std::optional<int> exec_failure_status(const base::Error& error);

class Launcher {
public:
    static base::Result<int> run(const ContainerSpec& spec, const LaunchOptions& options = {});
};

}  // namespace locald::ns
