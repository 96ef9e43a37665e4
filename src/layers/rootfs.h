// layers/rootfs.h — a container root filesystem from layer snapshots.
//
// Contract: src/layers *describes* mounts and never performs them: the
// launcher (src/ns) mounts the OverlayMount it is given, inside the
// container's user namespace. Where the kernel cannot do that (no overlay
// in a user namespace before Linux 5.11, or the probe failed), the caller
// asks for a flattened copy instead, which is plain file copying done here:
// snapshots are copied bottom-up into the target, overlay whiteouts (0/0
// character devices) delete, opaque directories (`user.overlay.opaque` or
// `trusted.overlay.opaque` = y) drop lower content, regular files are
// reflinked (FICLONE) when the filesystem supports it and copied otherwise,
// hardlinks inside a layer stay hardlinks. Owners are copied with fchown
// (real ids as root, container ids inside the user namespace, the caller's
// plus the copied `user.rootlesscontainers` xattr in single-id mode). The target tree is walked
// only through fds opened O_NOFOLLOW, so layer symlinks are copied, never followed. Depends on base
// only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace locald::layers {

// An overlay mount, as plain data for the launcher.
struct OverlayMount {
    std::string type = "overlay";
    std::string source = "overlay";
    std::vector<std::string> lowerdirs;  // top-most first, as overlayfs wants them
    std::string upperdir;
    std::string workdir;
    bool userxattr = false;  // rootless: opaque/whiteout xattrs in user.overlay.*
    // The `-o` data string: "lowerdir=A:B,upperdir=U,workdir=W[,userxattr]".
    std::string options() const;
};

// `lower_snapshots` bottom-most first (the image's layer order). Lower
// directories containing ':' or ',' cannot be passed to overlayfs and are an
// InvalidArgument error.
base::Result<OverlayMount> describe_overlay(const std::vector<std::string>& lower_snapshots,
                                            const std::string& upperdir, const std::string& workdir,
                                            bool rootless);

// True when the running kernel (≥ 5.11) lets an unprivileged user namespace
// mount overlayfs with `userxattr`. The launcher still probes; this only
// decides whether to try.
bool kernel_supports_userns_overlay();

struct FlattenOptions {
    bool reflink = true;  // try FICLONE first
};

struct FlattenStats {
    uint64_t files = 0;
    uint64_t reflinked = 0;
    uint64_t copied_bytes = 0;
    uint64_t whiteouts = 0;
    uint64_t opaque_dirs = 0;
    uint64_t skipped_devices = 0;
};

// Copies `snapshots` (bottom-most first) into the directory `target_fd`.
base::Result<FlattenStats> flatten_snapshots(const std::vector<std::string>& snapshots,
                                             int target_fd, const FlattenOptions& options = {});

}  // namespace locald::layers
