// cli/command.h — the subcommand table.
//
// One file per subcommand (`cmd_<name>.cc`), each parsing its options and
// calling one library entry point. A subcommand registers itself by adding
// one line to the table in commands.cc.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "base/error.h"

namespace locald::cli {

// Exit codes (documented in docs/manual.md):
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;      // the operation ran and failed (a service failed, …)
inline constexpr int kExitUsage = 2;        // bad command line
inline constexpr int kExitBadInput = 3;     // bad input: config, reference, missing file or image
inline constexpr int kExitUnavailable = 4;  // daemon, registry or kernel feature not available
inline constexpr int kExitInternal = 70;    // a bug or an unexpected system failure
inline constexpr int kExitCancelled = 130;  // interrupted (Ctrl-C)

struct Command {
    std::string_view name;
    std::string_view summary;  // one line for `locald --help`
    std::string_view help;     // full text for `locald help NAME`
    int (*run)(std::span<const std::string> args);
    bool hidden = false;  // internal modes, not listed in --help
};

std::span<const Command> commands();
const Command* find_command(std::string_view name);

// Prints `locald: error: …` to stderr and returns the exit code for its kind.
int report_error(const base::Error& error);
// Prints a usage error and a pointer to `locald help NAME`; returns kExitUsage.
int report_usage(std::string_view command, const base::Error& error);
int exit_code_for(base::ErrorKind kind);

}  // namespace locald::cli
