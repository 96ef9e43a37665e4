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
#include "base/exit_code.h"

namespace locald::cli {

// Exit codes: one table for every locald executable (base/exit_code.h).
using base::kExitBadInput;
using base::kExitCancelled;
using base::kExitFailure;
using base::kExitInternal;
using base::kExitOk;
using base::kExitUnavailable;
using base::kExitUsage;

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
using base::exit_code_for;

}  // namespace locald::cli
