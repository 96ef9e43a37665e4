// locald — the single binary: CLI, daemon and internal launch modes.
#include <clocale>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/commands_list.h"

int main(int argc, char** argv) {
    using namespace locald::cli;
    std::setlocale(LC_ALL, "C");
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "-h") {
        // `locald --help up` is `locald help up` (as `git --help log`).
        return run_help(
            std::vector<std::string>(args.begin() + (args.empty() ? 0 : 1), args.end()));
    }
    if (args[0] == "--version" || args[0] == "-V") {
        return run_version({});
    }
    const Command* command = find_command(args[0]);
    if (command == nullptr) {
        std::fprintf(stderr, "locald: error: unknown command `%s`; see `locald --help`\n",
                     args[0].c_str());
        return kExitUsage;
    }
    std::vector<std::string> rest(args.begin() + 1, args.end());
    // Only a leading --help asks for help: later ones may belong to a payload
    // (`locald container run IMG ls --help`, `locald run web -- cmd --help`).
    if (!rest.empty() && (rest[0] == "--help" || rest[0] == "-h")) {
        return run_help(std::vector<std::string>{std::string(command->name)});
    }
    return command->run(rest);
}
