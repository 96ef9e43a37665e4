// base/paths.h — where locald keeps its files.
//
// Contract: `Paths::from_env()` only computes paths (no filesystem access):
//   LOCALD_HOME=DIR set   → DIR/config, DIR/data, DIR/state, DIR/run
//                           (a relative DIR is made absolute against the cwd)
//   otherwise             → $XDG_CONFIG_HOME/locald (default ~/.config/locald),
//                           $XDG_DATA_HOME/locald  (default ~/.local/share/locald),
//                           $XDG_STATE_HOME/locald (default ~/.local/state/locald),
//                           $XDG_RUNTIME_DIR/locald, else /tmp/locald-$UID.
// Relative XDG_* values are ignored, as the XDG spec says. HOME unset (and
// needed) is a FailedPrecondition error.
// Directories are created by `ensure_private_dir` when a command needs them:
// 0700, owned by us, never a symlink — /tmp/locald-$UID in a shared /tmp
// could be pre-created by another user, and must then be refused.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>

#include "base/error.h"

namespace locald::base {

struct Paths {
    std::string config;  // user configuration (registry credentials live elsewhere)
    std::string data;    // images, layers, unpacked rootfs
    std::string state;   // per-project state, logs
    std::string run;     // sockets, pid files

    // From the process environment and geteuid().
    static Result<Paths> from_env();

    // The same rules over an injected environment (tests).
    using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
    static Result<Paths> from(const EnvLookup& getenv, uid_t uid);
};

// Creates `path` (and missing parents, 0700) as a directory with mode 0700,
// then verifies with lstat that it is a real directory (not a symlink),
// owned by geteuid(), with no group/other permission bits. Anything else is
// a PermissionDenied error saying what is wrong; it is never "fixed" with
// chmod, because a directory we did not create may already be in use.
Result<void> ensure_private_dir(const std::string& path);

}  // namespace locald::base
