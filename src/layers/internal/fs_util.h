// layers/internal/fs_util.h — small fd-relative helpers shared by the applier,
// the snapshot store and the rootfs flattener. Nothing here resolves a path
// with more than one component: callers resolve parents with base/confined.h.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"

namespace locald::layers::internal {

// Names in the directory `dir_fd` (a readable directory fd), without "." and
// "..", sorted. `dir_fd` itself is left open and unchanged.
base::Result<std::vector<std::string>> list_dir(int dir_fd);

}  // namespace locald::layers::internal
