// host/exec_plan.h — what the host supervisor runs: plain data, no behaviour.
//
// Contract: an ExecPlan is complete and final. The supervisor does not read
// config, does not interpolate, does not add variables — with two documented
// exceptions: `TERM` is added when `env` lacks it, and `NOTIFY_SOCKET` is set
// (replacing any value) when the supervisor binds a notify socket for the
// service (so the path in the env can never disagree with the bound socket).
// Every service kind (host command, container launcher, CNB host mode) becomes
// one of these. Depends on nothing but the standard library.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <string>
#include <vector>

namespace locald::host {

struct PtySize {
    uint16_t rows = 24;
    uint16_t cols = 80;
};

struct ExecPlan {
    // argv[0] is resolved against the PATH *in `env`* (not the daemon's PATH),
    // relative to `cwd` when it contains a '/'. A string command from the config
    // arrives here already as {"/bin/sh", "-c", command}.
    std::vector<std::string> argv;
    // "KEY=VALUE" entries, exactly the environment of the process.
    std::vector<std::string> env;
    // Working directory; must exist. Empty = inherit the supervisor's cwd.
    std::string cwd;
    // Sent to the whole process group (and every tracked descendant) on stop.
    int stop_signal = SIGTERM;
    // After this, SIGKILL to everything the service started.
    std::chrono::milliseconds stop_timeout{10'000};
    // Initial PTY window size; attach clients resize later.
    PtySize pty_size;
    // TERM value used only when `env` has no TERM entry.
    std::string default_term = "xterm-256color";
};

// "KEY" → value in a KEY=VALUE list; nullptr when absent. Last entry wins.
const std::string* find_env(const std::vector<std::string>& env, std::string_view key);

}  // namespace locald::host
