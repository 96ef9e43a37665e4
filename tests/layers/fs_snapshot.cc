#include "fs_snapshot.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "base/sha256.h"

namespace locald::layers::testing {

namespace {

std::string xattr_list(const std::string& path) {
    char names[4096];
    ssize_t n = llistxattr(path.c_str(), names, sizeof(names));
    if (n <= 0) {
        return "";
    }
    std::string out;
    std::vector<std::string> list;
    for (ssize_t i = 0; i < n;) {
        std::string name(names + i);
        i += static_cast<ssize_t>(name.size()) + 1;
        list.push_back(name);
    }
    std::sort(list.begin(), list.end());
    for (const auto& name : list) {
        char value[4096];
        ssize_t len = lgetxattr(path.c_str(), name.c_str(), value, sizeof(value));
        out += fmt::format(" {}={}", name,
                           base::to_hex(value, len > 0 ? static_cast<size_t>(len) : 0));
    }
    return out;
}

void walk(const std::string& root, const std::string& rel, const SnapshotOptions& options,
          std::map<std::string, std::string>& out) {
    if (!options.exclude.empty() && rel == options.exclude) {
        return;
    }
    std::string path = rel.empty() ? root : root + "/" + rel;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) {
        out[rel] = "unreadable";
        return;
    }
    std::string desc = fmt::format("mode={:o}", st.st_mode);
    if (options.include_owner) {
        desc += fmt::format(" owner={}:{}", st.st_uid, st.st_gid);
    }
    if (options.include_nlink && !S_ISDIR(st.st_mode)) {
        desc += fmt::format(" nlink={}", st.st_nlink);
    }
    if (options.include_times && !S_ISDIR(st.st_mode)) {
        desc += fmt::format(" mtime={}.{}", st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    }
    if (S_ISREG(st.st_mode)) {
        desc += fmt::format(" size={} sha={}", st.st_size,
                            base::sha256_hex(read_file_or_empty(path)).substr(0, 16));
    } else if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlink(path.c_str(), target, sizeof(target));
        desc += " -> " + std::string(target, n > 0 ? static_cast<size_t>(n) : 0);
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        desc += fmt::format(" rdev={}", st.st_rdev);
    }
    if (!S_ISLNK(st.st_mode)) {
        desc += xattr_list(path);
    }
    out[rel] = desc;
    if (S_ISDIR(st.st_mode)) {
        DIR* dir = opendir(path.c_str());
        if (dir == nullptr) {
            return;
        }
        std::vector<std::string> names;
        while (struct dirent* e = readdir(dir)) {
            std::string name = e->d_name;
            if (name != "." && name != "..") {
                names.push_back(name);
            }
        }
        closedir(dir);
        for (const auto& name : names) {
            walk(root, rel.empty() ? name : rel + "/" + name, options, out);
        }
    }
}

}  // namespace

std::map<std::string, std::string> snapshot_tree(const std::string& root,
                                                 const SnapshotOptions& options) {
    std::map<std::string, std::string> out;
    walk(root, "", options, out);
    return out;
}

std::string diff_snapshots(const std::map<std::string, std::string>& before,
                           const std::map<std::string, std::string>& after) {
    std::string out;
    for (const auto& [k, v] : before) {
        auto it = after.find(k);
        if (it == after.end()) {
            out += fmt::format("- {}: {}\n", k, v);
        } else if (it->second != v) {
            out += fmt::format("~ {}: {} => {}\n", k, v, it->second);
        }
    }
    for (const auto& [k, v] : after) {
        if (!before.contains(k)) {
            out += fmt::format("+ {}: {}\n", k, v);
        }
    }
    return out;
}

std::string read_file_or_empty(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string make_temp_dir(const std::string& prefix) {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = tmp && tmp[0] == '/' ? tmp : "/tmp";
    std::string templ = base + "/" + prefix + "-XXXXXX";
    char* made = mkdtemp(templ.data());
    return made ? std::string(made) : std::string();
}

void remove_tree(const std::string& path) {
    if (path.empty() || path == "/") {
        return;
    }
    std::string cmd = "chmod -R u+rwx '" + path + "' 2>/dev/null; rm -rf '" + path + "'";
    if (std::system(cmd.c_str()) != 0) {
        // best effort
    }
}

}  // namespace locald::layers::testing
