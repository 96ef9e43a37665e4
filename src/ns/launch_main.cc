// ns/launch_main.cc — `__launch SPEC`: spec file → Launcher::run → exit code.
#include "ns/launch_main.h"

#include <limits.h>
#include <unistd.h>

#include <cstdio>

#include "base/json.h"
#include "base/sys.h"
#include "ns/launcher.h"
#include "ns/spec.h"

namespace locald::ns {

namespace {

constexpr size_t kMaxSpecBytes = 4 * 1024 * 1024;

int report(const base::Error& error) {
    std::fprintf(stderr, "locald: error: %s\n", error.to_string().c_str());
    return launch_exit_code(error.kind());
}

std::string self_executable() {
    char buf[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) {
        return {};
    }
    std::string path(buf, static_cast<size_t>(n));
    // A binary replaced on disk while running (a rebuild) reads back with
    // this suffix; the new file at the same path is what we want to run.
    constexpr std::string_view kDeleted = " (deleted)";
    if (path.size() > kDeleted.size() && path.ends_with(kDeleted)) {
        path.resize(path.size() - kDeleted.size());
    }
    return path;
}

}  // namespace

int launch_exit_code(base::ErrorKind kind) {
    using base::ErrorKind;
    switch (kind) {
        case ErrorKind::InvalidArgument:
        case ErrorKind::NotFound:
        case ErrorKind::AlreadyExists:
        case ErrorKind::DataLoss:
        case ErrorKind::Unsupported:
            return 3;
        case ErrorKind::Unavailable:
        case ErrorKind::DeadlineExceeded:
            return 4;
        case ErrorKind::Cancelled:
            return 130;
        case ErrorKind::Internal:
            return 70;
        case ErrorKind::PermissionDenied:
        case ErrorKind::Unauthenticated:
        case ErrorKind::FailedPrecondition:
            return 1;
    }
    return 70;
}

int launch_main(std::span<const std::string> args) {
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

std::vector<std::string> launch_command(const std::string& spec_path, const std::string& self_exe) {
    std::string self = self_exe.empty() ? self_executable() : self_exe;
    if (self.empty()) {
        return {"/proc/self/exe", "__launch", spec_path};
    }
    auto slash = self.rfind('/');
    if (slash != std::string::npos) {
        std::string slim = self.substr(0, slash + 1) + kLaunchExecutable;
        if (slim != self && ::access(slim.c_str(), X_OK) == 0) {
            return {slim, spec_path};
        }
    }
    return {self, "__launch", spec_path};
}

}  // namespace locald::ns
