// ns/launch_command.cc — which executable runs a launch spec. Its own object
// file, depending on nothing of the launcher, so the daemon (which must not
// link the launcher or libseccomp) can call it.
#include <limits.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

#include "ns/launch_main.h"

namespace locald::ns {

namespace {

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
