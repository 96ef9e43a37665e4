// tests/layers/fs_snapshot.h — a comparable description of a directory tree
// (type, mode, owner, link count, size, mtime, content hash, symlink target,
// selected xattrs), for "nothing outside the root changed" and round trips.
#pragma once

#include <map>
#include <string>

namespace locald::layers::testing {

struct SnapshotOptions {
    bool include_times = true;
    bool include_nlink = true;
    bool include_owner = true;
    std::string exclude;  // a relative path whose subtree is skipped
};

// relative path → description; "" is the root itself.
std::map<std::string, std::string> snapshot_tree(const std::string& root,
                                                 const SnapshotOptions& options = {});

// Human diff of two snapshots (empty when equal).
std::string diff_snapshots(const std::map<std::string, std::string>& before,
                           const std::map<std::string, std::string>& after);

std::string read_file_or_empty(const std::string& path);
std::string make_temp_dir(const std::string& prefix);
void remove_tree(const std::string& path);

}  // namespace locald::layers::testing
