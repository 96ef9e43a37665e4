// layers/internal/fs_util.h — small fd-relative helpers shared by the applier,
// the snapshot store and the rootfs flattener. Nothing here resolves a path
// with more than one component: callers resolve parents with base/confined.h.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace locald::layers::internal {

// Names in the directory `dir_fd` (a readable directory fd), without "." and
// "..", sorted. `dir_fd` itself is left open and unchanged.
base::Result<std::vector<std::string>> list_dir(int dir_fd);

// Copies every xattr of `src` to `dst` but overlay markers (user.overlay.*,
// trusted.overlay.*). Losses (EPERM on security.*, ENOTSUP on the target
// filesystem) are tolerated: the copy is a best effort like cp -a's.
void copy_xattrs(int src, int dst);

// Copies the data of `in` (from its offset, `size` bytes expected) to `out`:
// copy_file_range while the kernel can, then read/write to EOF. Returns the
// bytes copied.
base::Result<uint64_t> copy_file_data(int in, int out, off_t size);

}  // namespace locald::layers::internal
