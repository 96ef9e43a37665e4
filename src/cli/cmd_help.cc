#include <cstdio>

#include "base/version.h"
#include "cli/command.h"
#include "cli/commands_list.h"

namespace locald::cli {

const char kHelpHelp[] =
    "usage: locald help [COMMAND]\n"
    "\n"
    "Without COMMAND, lists the commands; with it, shows that command's usage.\n";

namespace {

void print_overview() {
    std::printf(
        "locald %s — run a project's whole local stack with one command\n"
        "\n"
        "usage: locald [--version] [--help] COMMAND [ARGS…]\n"
        "\n"
        "commands:\n",
        base::kVersion);
    for (const auto& command : commands()) {
        if (!command.hidden) {
            std::printf("  %-16.*s %.*s\n", static_cast<int>(command.name.size()),
                        command.name.data(), static_cast<int>(command.summary.size()),
                        command.summary.data());
        }
    }
    std::printf(
        "\n"
        "Run `locald help COMMAND` for a command's options.\n"
        "Environment: LOCALD_HOME=DIR keeps config, data, state and the daemon socket under DIR.\n"
        "Exit codes: 0 ok, 1 failed, 2 usage, 3 bad input, 4 unavailable, 70 internal, 130 "
        "interrupted.\n");
}

}  // namespace

int run_help(std::span<const std::string> args) {
    if (args.empty()) {
        print_overview();
        return kExitOk;
    }
    if (args.size() > 1) {
        return report_usage(
            "help", base::invalid_argument("expected one COMMAND, got {} arguments", args.size()));
    }
    const Command* command = find_command(args[0]);
    if (command == nullptr) {
        std::fprintf(stderr, "locald: error: unknown command `%s`; see `locald --help`\n",
                     args[0].c_str());
        return kExitUsage;
    }
    std::fputs(std::string(command->help).c_str(), stdout);
    return kExitOk;
}

int run_version(std::span<const std::string> args) {
    if (!args.empty()) {
        return report_usage("version", base::invalid_argument("unexpected argument `{}`", args[0]));
    }
    std::printf("locald %s\n", base::kVersion);
    return kExitOk;
}

}  // namespace locald::cli
