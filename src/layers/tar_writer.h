// layers/tar_writer.h — deterministic layer tars (for `image save` of built
// images and the CNB exporter).
//
// Contract: the same tree gives the same bytes: entries sorted by path
// (byte order, parents before children), every time set to
// SOURCE_DATE_EPOCH (the option, else the environment variable, else 0),
// owners forced to the chosen uid/gid when given (else the file's), no user
// or group names, PAX headers only where ustar cannot express an entry,
// hardlinks detected by inode inside the tree, xattrs on the same allowlist
// the applier accepts. Output is plain, gzip (zlib, no timestamp, no name)
// or zstd; the DiffID (uncompressed) and the blob digest (compressed) are
// computed in the same pass that writes the bytes. Sockets are skipped.
// Depends on base only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/error.h"
#include "layers/compression.h"

namespace locald::layers {

struct TarWriterOptions {
    Compression compression = Compression::Gzip;
    int level = -1;                      // codec default when negative
    std::optional<int64_t> source_date;  // else $SOURCE_DATE_EPOCH, else 0
    std::optional<uint32_t> uid;
    std::optional<uint32_t> gid;
    std::string prefix;  // prepended to every entry name ("" = tree root)
    // Single-id rootless trees: owners come from `user.rootlesscontainers`
    // (absent = 0:0, as umoci repacks), and that xattr is not archived.
    bool owners_from_rootless_xattr = false;
};

struct TarWriteResult {
    std::string diff_id;  // "sha256:…" of the tar
    std::string digest;   // "sha256:…" of the written (compressed) blob
    uint64_t size = 0;    // bytes written
    uint64_t uncompressed_size = 0;
    uint64_t entries = 0;
};

// Writes the tree under `dir` (not following symlinks) as a layer to `out_fd`.
base::Result<TarWriteResult> write_layer_from_dir(const std::string& dir, int out_fd,
                                                  const TarWriterOptions& options = {});

}  // namespace locald::layers
