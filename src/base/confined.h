// base/confined.h — path operations that cannot leave a root directory.
//
// Contract: every path here is resolved *inside* `root_fd` as if root_fd were
// `/` (openat2 RESOLVE_IN_ROOT semantics): a leading `/` or an absolute
// symlink target restarts at the root, `..` at the root stays at the root,
// symlinks are followed (at most 40 hops → ELOOP) but never out of the root,
// and magic links (/proc/self/fd/N style) are never followed. This is the
// foundation of the layer unpacker's security: every path from an image is
// attacker-controlled and goes through these functions.
//
// Two implementations with the same semantics:
//  - Openat2: the kernel's openat2(2) with RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS
//    (raw syscall; EAGAIN from concurrent renames is retried).
//  - Walk: a userspace walk, one component at a time with
//    O_PATH|O_NOFOLLOW, reading symlinks itself and resolving them within
//    the root. Used when openat2 is missing (ENOSYS, e.g. blocked by seccomp).
// Auto (the default) uses openat2 and falls back to Walk once on ENOSYS.
//
// Every returned fd is O_CLOEXEC. Errors carry the errno (ELOOP, ENOENT,
// ENOTDIR, EEXIST…) so callers can branch on kind or errno_value().
#pragma once

#include <fcntl.h>
#include <sys/types.h>

#include <string>
#include <string_view>

#include "base/error.h"
#include "base/unique_fd.h"

namespace locald::base {

enum class ResolveMode {
    Auto,     // openat2 if the kernel has it, else Walk
    Openat2,  // openat2 only (Unsupported error if missing)
    Walk,     // the userspace walk only
};

// Process-wide; tests use it to run the same table in both modes.
void set_resolve_mode_for_testing(ResolveMode mode);
// The mode calls use right now (Auto resolved to Openat2 or Walk).
ResolveMode effective_resolve_mode();

// open(2) of `path` inside `root_fd` with `flags` (O_CLOEXEC added) and
// `mode` (for O_CREAT). O_NOFOLLOW applies to the last component as usual
// (with O_PATH it opens the symlink itself); O_CREAT|O_EXCL never follows a
// final symlink (EEXIST). An empty path is ENOENT; "." or "/" is the root.
Result<UniqueFd> open_in_root(int root_fd, std::string_view path, int flags, mode_t mode = 0);

struct ParentAndLeaf {
    UniqueFd dir;      // the parent directory, resolved inside the root
    std::string leaf;  // the last component; never resolved, never "." or ".."
};

// Resolves all but the last component of `path` inside the root and returns
// that directory plus the leaf name, for *at calls that must act on the
// entry itself (mkdirat, symlinkat, linkat, unlinkat, mknodat, fchownat
// with AT_SYMLINK_NOFOLLOW, utimensat…). Trailing slashes are ignored. A
// path whose leaf is "." or ".." or that names the root itself is an
// InvalidArgument error. `dir_flags` defaults to O_PATH, which works as the
// dirfd of *at calls even when the directory's mode denies reading (images
// ship 0000 directories); pass O_RDONLY to be able to fsync/readdir it.
Result<ParentAndLeaf> open_parent_in_root(int root_fd, std::string_view path,
                                          int dir_flags = O_PATH);

// mkdir -p inside the root: every missing component is created with `mode`
// (minus umask); existing directories and symlinks to directories inside the
// root are accepted; an existing non-directory is an error (ENOTDIR or
// EEXIST). Returns the final directory opened O_PATH|O_DIRECTORY.
Result<UniqueFd> mkdir_all_in_root(int root_fd, std::string_view path, mode_t mode);

}  // namespace locald::base
