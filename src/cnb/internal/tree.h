// cnb/internal/tree.h — reading a buildpack-written directory tree without
// ever leaving it.
//
// Contract: a Tree is a root directory fd plus the name messages use for it
// (a container path such as `/layers`, or a host path). Every path given to
// these functions is relative to the root and resolved with base/confined.h,
// so a symlink a buildpack planted (`env/PATH -> /etc/shadow`, `../../..`)
// resolves inside the root or fails — never outside. Files are opened
// O_NONBLOCK (a FIFO cannot block the build) and must be regular files of at
// most `max_bytes`. Listings are sorted by byte order, as Go's os.ReadDir.
// Used by env_files, build and launch only.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"

namespace locald::cnb::internal {

inline constexpr size_t kMaxBuildpackFile = 1 << 20;

struct Tree {
    int fd = -1;       // the root directory (not owned)
    std::string name;  // for messages: `<name>/<path>`

    std::string display(std::string_view path) const;
};

enum class EntryType { File, Directory, Other, Missing };

struct DirEntry {
    std::string name;
    // What the entry resolves to (symlinks followed inside the root); a
    // dangling symlink is Missing.
    EntryType type = EntryType::Missing;
};

// The sorted entries of `path`; nullopt when `path` does not exist. A path
// that exists but is not a directory is an error.
base::Result<std::optional<std::vector<DirEntry>>> list_dir(const Tree& tree,
                                                            std::string_view path);
// What `path` resolves to inside the root.
base::Result<EntryType> entry_type(const Tree& tree, std::string_view path);
// A regular file's content, verbatim.
base::Result<std::string> read_file(const Tree& tree, std::string_view path,
                                    size_t max_bytes = kMaxBuildpackFile);
// Like read_file, but nullopt when the file does not exist.
base::Result<std::optional<std::string>> read_optional_file(const Tree& tree, std::string_view path,
                                                            size_t max_bytes = kMaxBuildpackFile);
// `a/b` joined with one slash ("" joins to the other part).
std::string join(std::string_view a, std::string_view b);

}  // namespace locald::cnb::internal
