// config/internal/files.h — the little file and path handling the loader needs.
//
// Until base/sys.h lands this is a private copy; it reads whole (small) text
// files with a size cap so a mistaken `env_file = "/dev/zero"` cannot eat memory.
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace locald::config::internal {

inline constexpr size_t kMaxConfigFileBytes = 4 * 1024 * 1024;

// The contents of `path`. NotFound when it does not exist; InvalidArgument
// when it is not a regular file or is larger than `max_bytes`.
base::Result<std::string> read_text_file(const std::string& path,
                                         size_t max_bytes = kMaxConfigFileBytes);

// True when something is at `path` (any type, a dangling symlink included).
bool exists(const std::string& path);

// `relative` resolved against `base` (unless absolute), lexically normalised
// (`a/./b/../c` → `a/c`), never with a trailing slash.
std::string resolve_path(const std::string& base, std::string_view relative);

// The final component of `path` (`/a/b` → `b`).
std::string base_name(const std::string& path);

}  // namespace locald::config::internal
