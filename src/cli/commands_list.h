// cli/commands_list.h — entry points of the subcommands (one cmd_*.cc each).
#pragma once

#include <span>
#include <string>

namespace locald::cli {

extern const char kHelpHelp[];
int run_help(std::span<const std::string> args);
int run_version(std::span<const std::string> args);
extern const char kConfigHelp[];
int run_config(std::span<const std::string> args);
extern const char kEnvHelp[];
int run_env(std::span<const std::string> args);
extern const char kPullHelp[];
int run_pull(std::span<const std::string> args);

}  // namespace locald::cli
