// ns/launch_tool.cc — `locald-launch SPEC.json|-`: the slim launch executable.
//
// The same entry point as `locald __launch` (ns::launch_main), linked with
// base + ns only: the full `locald` binary loads ~50 shared libraries and
// runs their constructors before anything else, which measured as ~5 ms of a
// ~11 ms container start; this executable starts in ~1 ms. The daemon finds
// it next to its own binary (ns::launch_command) and falls back to
// `locald __launch` when it is missing.
#include <cstdio>
#include <string>
#include <vector>

#include "ns/launch_main.h"

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
        std::fputs(
            "usage: locald-launch SPEC.json|-\n"
            "\n"
            "Internal: runs one container described by a launcher spec (JSON) in the\n"
            "foreground and exits with its status (what `locald __launch` does).\n",
            stdout);
        return 0;
    }
    return locald::ns::launch_main(args);
}
