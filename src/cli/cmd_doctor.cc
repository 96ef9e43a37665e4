// cli/cmd_doctor.cc — `locald doctor [--json]`: can this machine run
// rootless containers, and what to fix when it cannot.
#include <cstdio>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "ns/doctor.h"

namespace locald::cli {

const char kDoctorHelp[] =
    "usage: locald doctor [--json]\n"
    "\n"
    "Checks what rootless containers need and says what works, what does not and\n"
    "the fix: kernel version, unprivileged user namespaces, newuidmap/newgidmap,\n"
    "your subordinate uid/gid ranges (really mapped), overlayfs inside a user\n"
    "namespace, cgroup version and delegation (resource limits), seccomp.\n"
    "Exit status 0 when containers can run (warnings allowed), 1 otherwise.\n";

int run_doctor(std::span<const std::string> args) {
    static const OptionSpec kOptions[] = {{"json"}};
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("doctor", parsed.error());
    }
    if (!parsed->positional().empty()) {
        return report_usage(
            "doctor", base::invalid_argument("unexpected argument `{}`", parsed->positional()[0]));
    }
    auto checks = ns::run_doctor_checks();
    bool ok = true;
    for (const auto& check : checks) {
        ok = ok && check.ok;
    }
    if (parsed->has("json")) {
        std::printf("%s\n", ns::doctor_to_json(checks).dump(true).c_str());
        return ok ? kExitOk : kExitFailure;
    }
    for (const auto& check : checks) {
        const char* mark = !check.ok ? "FAIL" : (check.warning ? "WARN" : " ok ");
        std::printf("[%s] %s: %s\n", mark, check.name.c_str(), check.detail.c_str());
        if (!check.fix.empty()) {
            std::printf("       fix: %s\n", check.fix.c_str());
        }
    }
    std::printf("%s\n", ok ? "rootless containers can run on this machine"
                           : "rootless containers cannot run until the failures above are fixed");
    return ok ? kExitOk : kExitFailure;
}

}  // namespace locald::cli
