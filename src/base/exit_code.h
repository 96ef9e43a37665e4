// base/exit_code.h — the process exit codes every locald executable uses
// (`locald`, and the slim `locald-launch` that cannot link the CLI), and the
// one table from an error's kind to its code. Documented for users in
// docs/manual/commands.md.
#pragma once

#include "base/error.h"

namespace locald::base {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;      // the operation ran and failed (a service failed, …)
inline constexpr int kExitUsage = 2;        // bad command line
inline constexpr int kExitBadInput = 3;     // bad input: config, reference, missing file or image
inline constexpr int kExitUnavailable = 4;  // daemon, registry or kernel feature not available
inline constexpr int kExitInternal = 70;    // a bug or an unexpected system failure
inline constexpr int kExitCancelled = 130;  // interrupted (Ctrl-C)

// The exit code for an error of this kind.
int exit_code_for(ErrorKind kind);

}  // namespace locald::base
