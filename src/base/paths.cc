#include "base/paths.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "base/sys.h"

namespace locald::base {

namespace {

std::string join(const std::string& dir, std::string_view name) {
    if (!dir.empty() && dir.back() == '/') {
        return dir + std::string(name);
    }
    return dir + "/" + std::string(name);
}

// An XDG variable counts only when set to an absolute path (XDG spec).
std::optional<std::string> xdg(const Paths::EnvLookup& getenv, const char* name) {
    auto value = getenv(name);
    if (value && !value->empty() && value->front() == '/') {
        return value;
    }
    return std::nullopt;
}

}  // namespace

Result<Paths> Paths::from(const EnvLookup& getenv, uid_t uid) {
    if (auto home = getenv("LOCALD_HOME"); home && !home->empty()) {
        std::string dir = *home;
        if (dir.front() != '/') {
            char* cwd = ::getcwd(nullptr, 0);
            if (cwd == nullptr) {
                return errno_error("resolving LOCALD_HOME=`{}` against the current directory", dir);
            }
            dir = join(cwd, dir);
            std::free(cwd);
        }
        return Paths{join(dir, "config"), join(dir, "data"), join(dir, "state"), join(dir, "run")};
    }
    auto config = xdg(getenv, "XDG_CONFIG_HOME");
    auto data = xdg(getenv, "XDG_DATA_HOME");
    auto state = xdg(getenv, "XDG_STATE_HOME");
    if (!config || !data || !state) {
        auto home = getenv("HOME");
        if (!home || home->empty() || home->front() != '/') {
            return failed_precondition(
                "HOME is not set to an absolute path; set HOME, the XDG_*_HOME variables or "
                "LOCALD_HOME");
        }
        if (!config) {
            config = join(*home, ".config");
        }
        if (!data) {
            data = join(*home, ".local/share");
        }
        if (!state) {
            state = join(*home, ".local/state");
        }
    }
    std::string run;
    if (auto runtime = xdg(getenv, "XDG_RUNTIME_DIR")) {
        run = join(*runtime, "locald");
    } else {
        run = fmt::format("/tmp/locald-{}", uid);
    }
    return Paths{join(*config, "locald"), join(*data, "locald"), join(*state, "locald"), run};
}

Result<Paths> Paths::from_env() {
    return from(
        [](const std::string& name) -> std::optional<std::string> {
            const char* value = std::getenv(name.c_str());
            if (value == nullptr) {
                return std::nullopt;
            }
            return std::string(value);
        },
        ::geteuid());
}

Result<void> ensure_private_dir(const std::string& path) {
    if (path.empty()) {
        return invalid_argument("creating a private directory: empty path");
    }
    if (::mkdir(path.c_str(), 0700) != 0) {
        int err = errno;
        if (err == ENOENT) {
            size_t slash = path.find_last_of('/');
            if (slash != std::string::npos && slash > 0) {
                TRY(mkdir_p(path.substr(0, slash), 0700));
            }
            if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
                return errno_error("creating directory `{}`", path);
            }
        } else if (err != EEXIST) {
            return Error::from_errno(err, fmt::format("creating directory `{}`", path));
        }
    }
    // lstat, not stat: a symlink someone planted (e.g. /tmp/locald-1000 →
    // their dir) must be refused, not followed.
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
        return errno_error("inspecting `{}`", path);
    }
    if (S_ISLNK(st.st_mode)) {
        return permission_denied("`{}` is a symlink, not a private directory; remove it", path);
    }
    if (!S_ISDIR(st.st_mode)) {
        return permission_denied("`{}` is not a directory; remove it", path);
    }
    if (st.st_uid != ::geteuid()) {
        return permission_denied("`{}` is owned by uid {}, not by us (uid {}); remove it", path,
                                 st.st_uid, ::geteuid());
    }
    if ((st.st_mode & 077) != 0) {
        return permission_denied(
            "`{}` has mode {:04o}: group or others can access it; run "
            "`chmod 700 {}`",
            path, st.st_mode & 07777, path);
    }
    return ok();
}

}  // namespace locald::base
