// ns/launch_main.cc — `__launch SPEC`: spec file → Launcher::run → exit code.
#include "ns/launch_main.h"

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <string_view>

#include "base/exit_code.h"
#include "base/json.h"
#include "base/sys.h"
#include "ns/launcher.h"
#include "ns/spec.h"

namespace locald::ns {

namespace {

constexpr size_t kMaxSpecBytes = 4 * 1024 * 1024;

int report(const base::Error& error) {
    std::fprintf(stderr, "locald: error: %s\n", error.to_string().c_str());
    return base::exit_code_for(error.kind());
}

}  // namespace

int launch_main(std::span<const std::string> args) {
    if (!args.empty() && args[0] == kHoldUsernsFlag) {
        std::string_view prefix = kHoldUsernsParentFlag;
        pid_t parent = 0;
        if (args.size() == 2 && args[1].starts_with(prefix)) {
            std::string_view digits = std::string_view(args[1]).substr(prefix.size());
            auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), parent);
            if (ec != std::errc() || end != digits.data() + digits.size() || parent <= 0) {
                parent = 0;
            }
        }
        if (args.size() > 2 || (args.size() == 2 && parent == 0)) {
            std::fprintf(stderr, "locald: error: expected `%s [%sPID]`\n", kHoldUsernsFlag,
                         kHoldUsernsParentFlag);
            return 2;
        }
        return hold_user_namespace_main(parent);
    }
    if (args.size() != 1) {
        std::fprintf(stderr,
                     "locald: error: expected exactly one SPEC.json (or - for stdin)\n"
                     "see `locald help __launch`\n");
        return 2;
    }
    auto text = args[0] == "-" ? base::read_all(STDIN_FILENO, kMaxSpecBytes)
                               : base::read_file(args[0], kMaxSpecBytes);
    if (!text) {
        return report(text.error());
    }
    auto json = base::Json::parse(*text);
    if (!json) {
        return report(
            json.release_error().context(fmt::format("parsing the launch spec `{}`", args[0])));
    }
    auto spec = spec_from_json(*json);
    if (!spec) {
        return report(
            spec.release_error().context(fmt::format("reading the launch spec `{}`", args[0])));
    }
    auto status = Launcher::run(*spec);
    if (!status) {
        int code = report(status.error());
        return exec_failure_status(status.error()).value_or(code);
    }
    return *status;
}

}  // namespace locald::ns
