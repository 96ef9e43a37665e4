// cli/commands_list.h — entry points of the subcommands (one cmd_*.cc each).
#pragma once

#include <span>
#include <string>

namespace locald::cli {

extern const char kHelpHelp[];
int run_help(std::span<const std::string> args);
int run_version(std::span<const std::string> args);

}  // namespace locald::cli
