#include "layers/lower_links.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <deque>
#include <map>
#include <optional>
#include <utility>

#include "base/confined.h"
#include "base/sys.h"
#include "layers/internal/fs_util.h"

namespace locald::layers {

namespace {

using base::Result;
using base::UniqueFd;

constexpr int kMaxSymlinks = 40;

bool is_whiteout(const struct stat& st) {
    return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

bool is_opaque(int dir_fd) {
    char value[4];
    for (const char* name : {"user.overlay.opaque", "trusted.overlay.opaque"}) {
        ssize_t n = fgetxattr(dir_fd, name, value, sizeof(value));
        if (n == 1 && value[0] == 'y') {
            return true;
        }
    }
    return false;
}

std::deque<std::string> split_path(std::string_view path) {
    std::deque<std::string> out;
    size_t start = 0;
    while (start <= path.size()) {
        size_t slash = path.find('/', start);
        std::string_view part = path.substr(
            start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
        if (!part.empty()) {
            out.emplace_back(part);
        }
        if (slash == std::string_view::npos) {
            break;
        }
        start = slash + 1;
    }
    return out;
}

// One directory of the merged view: the fds of that directory in every
// layer where it is visible, top-most first (index 0 = the layer itself).
struct Level {
    std::vector<std::pair<size_t, UniqueFd>> dirs;
};

struct Found {
    size_t layer = 0;
    UniqueFd parent;  // the directory holding it, in that layer
    std::string leaf;
    struct stat st {};
};

// Looks `path` up in the merged view of `roots` (top-most first) as
// described in the header; the last component is never followed.
Result<Found> resolve_merged(const std::vector<int>& roots, const std::string& path) {
    std::vector<Level> stack;
    Level root;
    for (size_t i = 0; i < roots.size(); i++) {
        root.dirs.emplace_back(i, TRY(base::dup_fd(roots[i])));
    }
    stack.push_back(std::move(root));
    std::deque<std::string> todo = split_path(path);
    int symlinks = 0;
    while (!todo.empty()) {
        std::string name = std::move(todo.front());
        todo.pop_front();
        if (name == ".") {
            continue;
        }
        if (name == "..") {
            if (stack.size() > 1) {
                stack.pop_back();  // the resolved prefix holds directories only
            }
            continue;
        }
        bool last = todo.empty();
        Level& current = stack.back();
        std::optional<size_t> top;
        struct stat st {};
        for (size_t k = 0; k < current.dirs.size(); k++) {
            if (fstatat(current.dirs[k].second.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) ==
                0) {
                top = k;
                break;
            }
            if (errno != ENOENT) {
                return base::errno_error("looking up `{}`", name);
            }
        }
        if (!top || is_whiteout(st)) {
            return base::not_found("`{}` does not exist", path);
        }
        if (S_ISLNK(st.st_mode) && !last) {
            if (++symlinks > kMaxSymlinks) {
                return base::invalid_argument("too many symlinks resolving `{}`", path);
            }
            std::string target = TRY(base::read_link_at(current.dirs[*top].second.get(), name));
            auto parts = split_path(target);
            todo.insert(todo.begin(), parts.begin(), parts.end());
            if (!target.empty() && target[0] == '/') {
                stack.resize(1);  // absolute: from the (merged) root
            }
            continue;
        }
        if (last) {
            if (S_ISDIR(st.st_mode)) {
                return base::invalid_argument("`{}` is a directory", path);
            }
            Found found;
            found.layer = current.dirs[*top].first;
            found.parent = TRY(base::dup_fd(current.dirs[*top].second.get()));
            found.leaf = name;
            found.st = st;
            return found;
        }
        if (!S_ISDIR(st.st_mode)) {
            return base::not_found("`{}` does not exist (a parent is not a directory)", path);
        }
        Level next;
        for (size_t k = *top; k < current.dirs.size(); k++) {
            struct stat lower;
            int dir = current.dirs[k].second.get();
            if (fstatat(dir, name.c_str(), &lower, AT_SYMLINK_NOFOLLOW) != 0) {
                if (errno == ENOENT) {
                    continue;  // not in this layer: lower ones may have it
                }
                return base::errno_error("looking up `{}`", name);
            }
            if (!S_ISDIR(lower.st_mode)) {
                break;  // a file or whiteout hides every lower directory
            }
            UniqueFd fd = TRY(base::open_at(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
            bool opaque = is_opaque(fd.get());
            next.dirs.emplace_back(current.dirs[k].first, std::move(fd));
            if (opaque) {
                break;
            }
        }
        stack.push_back(std::move(next));
    }
    return base::invalid_argument("hardlink to the root directory");
}

// Copies `found` (a non-directory of a lower layer) to `leaf` in `dst_dir`.
Result<void> copy_up(const Found& found, int dst_dir, const std::string& leaf,
                     LowerLinkStats& stats) {
    const struct stat& st = found.st;
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (S_ISREG(st.st_mode)) {
        UniqueFd in = TRY(base::open_at(found.parent.get(), found.leaf, O_RDONLY | O_NOFOLLOW));
        UniqueFd out =
            TRY(base::open_at(dst_dir, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
        TRY(internal::copy_file_data(in.get(), out.get(), st.st_size));
        // Owner before mode so setuid/setgid survive; EPERM: an id this
        // namespace cannot represent, as the lower copy already did.
        (void)fchown(out.get(), st.st_uid, st.st_gid);
        if (fchmod(out.get(), st.st_mode & 07777) != 0) {
            return base::errno_error("chmod");
        }
        internal::copy_xattrs(in.get(), out.get());
        if (futimens(out.get(), times) != 0) {
            return base::errno_error("setting times");
        }
        return base::ok();
    }
    if (S_ISLNK(st.st_mode)) {
        std::string target = TRY(base::read_link_at(found.parent.get(), found.leaf));
        if (symlinkat(target.c_str(), dst_dir, leaf.c_str()) != 0) {
            return base::errno_error("creating the symlink");
        }
        (void)fchownat(dst_dir, leaf.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
        (void)utimensat(dst_dir, leaf.c_str(), times, AT_SYMLINK_NOFOLLOW);
        return base::ok();
    }
    if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        if (mknodat(dst_dir, leaf.c_str(), (st.st_mode & S_IFMT) | 0600, st.st_rdev) != 0) {
            if (!S_ISFIFO(st.st_mode) && (errno == EPERM || errno == EACCES)) {
                stats.skipped_devices++;  // devices need real root, like the applier's
                return base::ok();
            }
            return base::errno_error("creating the node");
        }
        (void)fchownat(dst_dir, leaf.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
        if (fchmodat(dst_dir, leaf.c_str(), st.st_mode & 07777, 0) != 0) {
            return base::errno_error("chmod");
        }
        (void)utimensat(dst_dir, leaf.c_str(), times, AT_SYMLINK_NOFOLLOW);
        return base::ok();
    }
    return base::invalid_argument("cannot link to a socket");
}

}  // namespace

base::Result<LowerLinkStats> resolve_lower_links(int layer_root,
                                                 const std::vector<int>& lower_roots,
                                                 const std::vector<LowerLink>& links,
                                                 const std::string& layer_digest) {
    LowerLinkStats stats;
    std::vector<int> roots{layer_root};
    roots.insert(roots.end(), lower_roots.begin(), lower_roots.end());
    // (layer, dev, inode) of a copied-up file → the path of its copy.
    std::map<std::tuple<size_t, dev_t, ino_t>, std::string> copies;
    for (const auto& link : links) {
        auto done = [&]() -> Result<void> {
            auto parent = TRY(base::open_parent_in_root(layer_root, link.path, O_RDONLY));
            struct stat existing;
            if (fstatat(parent.dir.get(), parent.leaf.c_str(), &existing, AT_SYMLINK_NOFOLLOW) ==
                0) {
                stats.skipped++;  // a later entry of the layer took the path
                return base::ok();
            }
            Found found = TRY(resolve_merged(roots, link.target));
            // The layer's directories already have their final modes; a
            // read-only one (0555) is made writable for the owner meanwhile
            // (single-id mode has no DAC override).
            struct stat dir_st = TRY(base::fstat_fd(parent.dir.get()));
            bool restore = (dir_st.st_mode & 0300) != 0300 && dir_st.st_uid == geteuid() &&
                           fchmod(parent.dir.get(), (dir_st.st_mode & 07777) | 0300) == 0;
            auto restore_mode = [&]() {
                if (restore) {
                    (void)fchmod(parent.dir.get(), dir_st.st_mode & 07777);
                    struct timespec times[2] = {dir_st.st_atim, dir_st.st_mtim};
                    (void)futimens(parent.dir.get(), times);
                }
            };
            if (found.layer == 0) {
                int rc = linkat(found.parent.get(), found.leaf.c_str(), parent.dir.get(),
                                parent.leaf.c_str(), 0);
                int err = errno;
                restore_mode();
                if (rc != 0) {
                    errno = err;
                    return base::errno_error("linking");
                }
                stats.linked++;
                return base::ok();
            }
            auto key = std::make_tuple(found.layer, found.st.st_dev, found.st.st_ino);
            if (auto it = copies.find(key); it != copies.end()) {
                auto first = base::open_parent_in_root(layer_root, it->second, O_PATH);
                if (first && linkat(first->dir.get(), first->leaf.c_str(), parent.dir.get(),
                                    parent.leaf.c_str(), 0) == 0) {
                    restore_mode();
                    stats.linked++;
                    return base::ok();
                }
                // The first copy was replaced meanwhile: copy again.
            }
            auto copied = copy_up(found, parent.dir.get(), parent.leaf, stats);
            restore_mode();
            TRY(std::move(copied));
            copies[key] = link.path;
            stats.copied_up++;
            return base::ok();
        }();
        if (!done) {
            return done.release_error().context(
                fmt::format("applying layer `{}`: entry `{}`: hardlink to `{}` in a lower layer",
                            layer_digest, link.path, link.target));
        }
    }
    return stats;
}

}  // namespace locald::layers
