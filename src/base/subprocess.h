// base/subprocess.h — run a program to completion and capture its output.
//
// Contract: for short-lived helpers (docker credential helpers, newuidmap,
// tar in tests): argv[0] is searched (before forking) in the PATH the child
// will get — `env`'s PATH when env is given, else ours — unless it contains
// '/'. stdin
// gets `stdin_data` (or /dev/null); stdout and stderr are captured up to
// their caps. Exceeding a cap kills the child and sets the *_truncated flag
// (the status then says "killed"); exceeding the timeout kills it and is a
// DeadlineExceeded error. A program that cannot be executed is an error
// (NotFound, PermissionDenied…) carrying exec's errno, not exit status 127.
// The child gets a clean signal mask and default dispositions (the event
// loop blocks signals for signalfd) and no fds but 0, 1, 2.
// A non-zero exit is NOT an error: check result.status.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "base/child.h"
#include "base/error.h"

namespace locald::base {

struct SubprocessOptions {
    std::vector<std::string> argv;                // argv[0] is the program
    std::optional<std::vector<std::string>> env;  // "K=V" entries; nullopt inherits ours
    std::string cwd;                              // empty: inherit
    std::optional<std::string> stdin_data;        // nullopt: /dev/null
    size_t max_stdout = 1024 * 1024;
    size_t max_stderr = 64 * 1024;
    std::optional<std::chrono::milliseconds> timeout;  // nullopt: wait forever
};

struct SubprocessResult {
    ExitStatus status = ExitStatus::exited(0);
    std::string stdout_data;
    std::string stderr_data;
    bool stdout_truncated = false;
    bool stderr_truncated = false;
};

Result<SubprocessResult> run_subprocess(const SubprocessOptions& options);

}  // namespace locald::base
