// layers/layer_applier.h — applies one OCI layer blob onto a directory, safely.
//
// Contract:
// - Every byte of the layer is attacker-controlled. Entry names are cleaned
//   as if rooted at `/` (`../../x` → `x`); every parent directory is resolved
//   inside the root by the kernel (base/confined.h: openat2 RESOLVE_IN_ROOT,
//   or the O_NOFOLLOW walk), and leaves are created with *at() calls that
//   never follow a symlink. No path string is joined and then opened.
// - Compression is sniffed (layers/compression.h); libarchive reads only the
//   tar format with its own decompression off, so the DiffID (sha256 of the
//   uncompressed stream, trailing padding included) is exactly what
//   `rootfs.diff_ids` lists. A mismatch is DataLoss. The applier writes into
//   the directory it is given: "nothing committed" is the caller's job
//   (SnapshotStore extracts into a temporary directory and renames it only
//   after apply_layer succeeded).
// - Whiteouts (`.wh.NAME`, `.wh..wh..opq`) follow the OCI layer spec:
//   entries of the same layer survive whatever the tar order. In Flatten
//   mode they delete lower content in place; in Overlay mode (one directory
//   per layer) they become overlayfs markers: a 0/0 character device for a
//   removed name, `user.overlay.opaque=y` (and `trusted.overlay.opaque=y`
//   when root) for an opaque directory.
// - Metadata: owner first, then mode (so setuid/setgid survive), times
//   (directories last, deepest first, so 0000 directories do not block their
//   children), xattrs on an allowlist (`user.*` except `user.overlay.*` and
//   `user.rootlesscontainers`; `security.capability`, stored as v2 so the
//   kernel binds it to the user namespace applying it). Everything else
//   (`trusted.*`, `security.selinux`, `system.*`) is dropped and counted.
// - Errors name the layer digest and the entry.
// Depends on base (confined paths, sha256) only; performs no mounts.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "layers/compression.h"

namespace locald::layers {

enum class WhiteoutMode {
    Flatten,  // apply onto the merged tree: whiteouts delete lower content
    Overlay,  // apply into an empty per-layer directory: whiteouts become markers
};

enum class OwnershipMode {
    // lchown to the ids in the tar. As root: real owners. Inside a user
    // namespace with the container mapping: the container's owners. Ids the
    // namespace does not map are left to the applier and counted.
    Preserve,
    // No chown (single-id rootless): every file belongs to the caller and the
    // tar's uid/gid go into `user.rootlesscontainers` (umoci's format).
    RootlessXattr,
};

struct ApplyLimits {
    uint64_t max_entries = 2'000'000;
    uint64_t max_uncompressed_bytes = uint64_t{64} << 30;  // 64 GiB
    size_t max_path_bytes = 4096;
    size_t max_link_target_bytes = 4096;
    size_t max_xattr_bytes = 64 * 1024;  // per entry, names + values
};

struct ApplyOptions {
    std::string layer_digest;      // "sha256:…", for messages
    std::string expected_diff_id;  // "sha256:…"; empty: not checked
    WhiteoutMode whiteouts = WhiteoutMode::Flatten;
    OwnershipMode ownership = OwnershipMode::Preserve;
    // mknod of character/block devices (only meaningful as real root).
    bool create_devices = false;
    // Also set `trusted.overlay.opaque` in Overlay mode (needs real root).
    bool trusted_overlay_xattrs = false;
    // Hash the compressed bytes too (ApplyStats::compressed_digest). Off
    // when the blob comes from the content store, which verified it on
    // ingest; the DiffID check covers the content either way.
    bool hash_compressed = true;
    ApplyLimits limits;
};

// A hardlink entry of an Overlay-mode apply whose target was not in the
// layer's own directory (layers/lower_links.h resolves it later).
struct LowerLink {
    std::string path;    // the link (cleaned entry path)
    std::string target;  // its target (cleaned)
};

struct ApplyStats {
    Compression compression = Compression::None;
    std::string diff_id;            // "sha256:…" of the uncompressed stream
    std::string compressed_digest;  // "sha256:…" of the blob as read (if hashed)
    uint64_t compressed_bytes = 0;
    uint64_t uncompressed_bytes = 0;
    uint64_t entries = 0;
    uint64_t files = 0;
    uint64_t directories = 0;
    uint64_t symlinks = 0;
    uint64_t hardlinks = 0;
    uint64_t fifos = 0;
    uint64_t devices = 0;
    uint64_t whiteouts = 0;
    uint64_t skipped_devices = 0;
    uint64_t skipped_sockets = 0;
    uint64_t dropped_xattrs = 0;
    uint64_t unmapped_owners = 0;
    // Directories created only because an entry needed a parent (no tar
    // entry of their own); their metadata is not the layer's.
    std::vector<std::string> implicit_dirs;
    // Overlay mode: hardlinks to files of lower layers, in tar order.
    std::vector<LowerLink> lower_links;
    // One line per kind of loss ("skipped 2 device nodes: …").
    std::vector<std::string> warnings;
};

// Applies the layer read from `blob_fd` (from its current offset to EOF) onto
// the directory `root_fd`.
base::Result<ApplyStats> apply_layer(int root_fd, int blob_fd, const ApplyOptions& options);
// Same, reading from `source`.
base::Result<ApplyStats> apply_layer(int root_fd, ReadFn source, const ApplyOptions& options);

// Cleans a tar entry name as if rooted at `/`: "./a//b/../c/" → "a/c",
// "../../etc" → "etc", "/" or ".." → "" (the root itself).
std::string clean_entry_path(std::string_view name);

// umoci's `user.rootlesscontainers` payload (protobuf `Resource{uid=1,gid=2}`,
// 0 written as NoopID 0xFFFFFFFF). Empty when both ids are 0.
std::string encode_rootless_xattr(uint32_t uid, uint32_t gid);
// Inverse; InvalidArgument for a malformed payload.
base::Result<std::pair<uint32_t, uint32_t>> decode_rootless_xattr(std::string_view payload);

inline constexpr const char* kRootlessXattr = "user.rootlesscontainers";

}  // namespace locald::layers
