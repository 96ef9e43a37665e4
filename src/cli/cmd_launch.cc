// cli/cmd_launch.cc — `locald __launch SPEC.json`, the hidden internal mode.
//
// The daemon's supervisor execs this for `image =` services: a fresh,
// single-threaded process (the daemon itself never enters namespaces) that
// becomes the parent of the container's PID 1, forwards signals and exits
// with the container's status (128+N for a signal), so logs, PTYs, restarts
// and stop work exactly as for host services. `-` reads the spec from stdin.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "base/json.h"
#include "base/sys.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "ns/launcher.h"

namespace locald::cli {

const char kLaunchHelp[] =
    "usage: locald __launch SPEC.json|-\n"
    "\n"
    "Internal: runs one container described by a launcher spec (JSON) in the\n"
    "foreground and exits with its status. Used by the daemon for image services.\n";

namespace {

constexpr size_t kMaxSpecBytes = 4 * 1024 * 1024;

}  // namespace

int run_launch(std::span<const std::string> args) {
    if (args.size() != 1) {
        return report_usage("__launch", base::invalid_argument("expected exactly one SPEC.json"));
    }
    auto text = args[0] == "-" ? base::read_all(STDIN_FILENO, kMaxSpecBytes)
                               : base::read_file(args[0], kMaxSpecBytes);
    if (!text) {
        return report_error(text.error());
    }
    auto json = base::Json::parse(*text);
    if (!json) {
        return report_error(json.release_error().context("parsing the launch spec"));
    }
    auto spec = ns::spec_from_json(*json);
    if (!spec) {
        return report_error(spec.release_error().context("reading the launch spec"));
    }
    auto status = ns::Launcher::run(*spec);
    if (!status) {
        int code = report_error(status.error());
        return ns::exec_failure_status(status.error()).value_or(code);
    }
    return *status;
}

}  // namespace locald::cli
