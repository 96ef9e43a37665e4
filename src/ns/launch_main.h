// ns/launch_main.h — the launch entry point: run one container described by a
// JSON spec (ns::to_json) in the foreground and exit with its status.
//
// Contract: `launch_main({SPEC})` reads SPEC (a path, or `-` for stdin,
// 4 MiB cap), runs it with Launcher::run and returns the process exit code:
// the container's status (128+N for a signal), 127/126 when the payload
// cannot be executed, otherwise a launcher error printed as
// `locald: error: …` with the CLI's exit code for its kind. It is what both
// `locald __launch SPEC` and the slim `locald-launch SPEC` executable run
// (the latter links base + ns only, so a service's container does not pay
// for loading the whole CLI; see docs/architecture.md).
//
// `launch_command(spec)` is the argv a supervisor should exec for a spec:
// `DIR/locald-launch SPEC` when that executable sits next to the running
// binary, else `SELF __launch SPEC`. It lives in its own object file
// (launch_command.cc): calling it does not link the launcher.
#pragma once

#include <sys/types.h>

#include <span>
#include <string>
#include <vector>

#include "base/error.h"

namespace locald::ns {

// The slim executable's file name, installed next to `locald`.
inline constexpr const char* kLaunchExecutable = "locald-launch";

int launch_main(std::span<const std::string> args);

// `launch_main({"--hold-userns"[, "--parent=PID"]})` (so `locald-launch
// --hold-userns --parent=PID`, or `locald __launch --hold-userns …`): hold
// one user namespace mapped with base::container_mapping() until stdin
// reaches EOF or the parent dies — the daemon's holder for
// spec.user_namespace (hold_userns.cc has the protocol). With PID (> 0) the
// holder refuses to start unless its parent is that process once its
// parent-death signal is armed. Returns the exit code.
inline constexpr const char* kHoldUsernsFlag = "--hold-userns";
inline constexpr const char* kHoldUsernsParentFlag = "--parent=";
int hold_user_namespace_main(pid_t expected_parent);

// `self_exe` defaults to the running executable (/proc/self/exe).
std::vector<std::string> launch_command(const std::string& spec_path,
                                        const std::string& self_exe = "");

}  // namespace locald::ns
