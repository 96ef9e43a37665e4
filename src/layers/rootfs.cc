#include "layers/rootfs.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <utility>

#include "base/confined.h"
#include "base/sys.h"
#include "base/unique_fd.h"
#include "layers/internal/fs_util.h"

namespace locald::layers {

namespace {

using base::Result;
using base::UniqueFd;

bool has_opaque_xattr(int fd) {
    char value[4];
    for (const char* name : {"user.overlay.opaque", "trusted.overlay.opaque"}) {
        ssize_t n = fgetxattr(fd, name, value, sizeof(value));
        if (n == 1 && value[0] == 'y') {
            return true;
        }
    }
    return false;
}

void set_owner(int fd, const struct stat& st) {
    // EPERM/EINVAL: an id this namespace cannot represent; the copy keeps
    // the caller's, as the snapshot did.
    (void)fchown(fd, st.st_uid, st.st_gid);
}

class Flattener {
public:
    Flattener(int target, const FlattenOptions& options) : m_target(target), m_options(options) {}
    Result<void> copy_layer(const std::string& snapshot) {
        m_links.clear();
        UniqueFd src = TRY(base::open_file(snapshot, O_RDONLY | O_DIRECTORY));
        UniqueFd dst = TRY(base::dup_fd(m_target));
        return copy_dir(src.get(), dst.get(), "").context(fmt::format("flattening `{}`", snapshot));
    }
    FlattenStats stats;

private:
    Result<void> copy_dir(int src, int dst, const std::string& rel);
    Result<void> copy_file(int src_dir, int dst_dir, const std::string& name, const struct stat& st,
                           const std::string& rel);
    Result<void> copy_data(int in, int out, off_t size);

    int m_target;
    const FlattenOptions& m_options;
    // (dev, inode) of a multiply-linked file in this layer → its copy's path.
    std::map<std::pair<dev_t, ino_t>, std::string> m_links;
    bool m_reflink_works = true;
};

Result<void> Flattener::copy_data(int in, int out, off_t size) {
    if (m_options.reflink && m_reflink_works) {
        if (ioctl(out, FICLONE, in) == 0) {
            stats.reflinked++;
            return base::ok();
        }
        if (errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL || errno == ENOTTY) {
            m_reflink_works = false;  // the filesystem cannot: do not ask again
        }
    }
    stats.copied_bytes += TRY(internal::copy_file_data(in, out, size));
    return base::ok();
}

Result<void> Flattener::copy_file(int src_dir, int dst_dir, const std::string& name,
                                  const struct stat& st, const std::string& rel) {
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (S_ISREG(st.st_mode)) {
        auto key = std::make_pair(st.st_dev, st.st_ino);
        if (st.st_nlink > 1) {
            auto it = m_links.find(key);
            if (it != m_links.end()) {
                auto parent = base::open_parent_in_root(m_target, it->second);
                if (parent && linkat(parent->dir.get(), parent->leaf.c_str(), dst_dir, name.c_str(),
                                     0) == 0) {
                    return base::ok();
                }
                // The first copy was replaced meanwhile: copy the data instead.
            }
        }
        UniqueFd in = TRY(base::open_at(src_dir, name, O_RDONLY | O_NOFOLLOW));
        UniqueFd out =
            TRY(base::open_at(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
        TRY(copy_data(in.get(), out.get(), st.st_size));
        set_owner(out.get(), st);
        if (fchmod(out.get(), st.st_mode & 07777) != 0) {
            return base::errno_error("chmod `{}`", rel);
        }
        internal::copy_xattrs(in.get(), out.get());
        futimens(out.get(), times);
        stats.files++;
        if (st.st_nlink > 1) {
            m_links[key] = rel;
        }
        return base::ok();
    }
    if (S_ISLNK(st.st_mode)) {
        std::string target = TRY(base::read_link_at(src_dir, name));
        if (symlinkat(target.c_str(), dst_dir, name.c_str()) != 0) {
            return base::errno_error("creating symlink `{}`", rel);
        }
        (void)fchownat(dst_dir, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
        utimensat(dst_dir, name.c_str(), times, AT_SYMLINK_NOFOLLOW);
        return base::ok();
    }
    if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        if (mknodat(dst_dir, name.c_str(), (st.st_mode & S_IFMT) | 0600, st.st_rdev) != 0) {
            if (!S_ISFIFO(st.st_mode) && (errno == EPERM || errno == EACCES)) {
                stats.skipped_devices++;
                return base::ok();
            }
            return base::errno_error("creating `{}`", rel);
        }
        (void)fchownat(dst_dir, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
        fchmodat(dst_dir, name.c_str(), st.st_mode & 07777, AT_SYMLINK_NOFOLLOW);
        utimensat(dst_dir, name.c_str(), times, AT_SYMLINK_NOFOLLOW);
        return base::ok();
    }
    return base::ok();  // sockets: nothing to copy
}

Result<void> Flattener::copy_dir(int src, int dst, const std::string& rel) {
    auto names = TRY(internal::list_dir(src));
    for (const auto& name : names) {
        std::string crel = rel.empty() ? name : rel + "/" + name;
        struct stat st;
        if (fstatat(src, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            return base::errno_error("inspecting `{}`", crel);
        }
        struct stat dst_st;
        bool dst_exists = fstatat(dst, name.c_str(), &dst_st, AT_SYMLINK_NOFOLLOW) == 0;
        if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
            if (dst_exists) {
                TRY(base::remove_all_at(dst, name));
            }
            stats.whiteouts++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (dst_exists) {
                TRY(base::remove_all_at(dst, name));
            }
            TRY(copy_file(src, dst, name, st, crel));
            continue;
        }
        UniqueFd csrc = TRY(base::open_at(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
        bool opaque = has_opaque_xattr(csrc.get());
        if (dst_exists && !S_ISDIR(dst_st.st_mode)) {
            TRY(base::remove_all_at(dst, name));
            dst_exists = false;
        }
        if (!dst_exists && mkdirat(dst, name.c_str(), 0700) != 0) {
            return base::errno_error("creating directory `{}`", crel);
        }
        // Owner-accessible while we fill it; the layer's mode comes after.
        fchmodat(dst, name.c_str(), 0700, 0);
        UniqueFd cdst = TRY(base::open_at(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
        if (dst_exists && opaque) {
            for (const auto& child : TRY(internal::list_dir(cdst.get()))) {
                TRY(base::remove_all_at(cdst.get(), child));
            }
            stats.opaque_dirs++;
        }
        TRY(copy_dir(csrc.get(), cdst.get(), crel));
        set_owner(cdst.get(), st);
        internal::copy_xattrs(csrc.get(), cdst.get());
        if (fchmod(cdst.get(), st.st_mode & 07777) != 0) {
            return base::errno_error("chmod `{}`", crel);
        }
        struct timespec times[2] = {st.st_atim, st.st_mtim};
        futimens(cdst.get(), times);
    }
    return base::ok();
}

}  // namespace

std::string OverlayMount::options() const {
    std::string out = "lowerdir=";
    for (size_t i = 0; i < lowerdirs.size(); i++) {
        out += (i ? ":" : "") + lowerdirs[i];
    }
    if (!upperdir.empty()) {
        out += ",upperdir=" + upperdir + ",workdir=" + workdir;
    }
    if (userxattr) {
        out += ",userxattr";
    }
    return out;
}

base::Result<OverlayMount> describe_overlay(const std::vector<std::string>& lower_snapshots,
                                            const std::string& upperdir, const std::string& workdir,
                                            bool rootless) {
    if (lower_snapshots.empty()) {
        return base::invalid_argument("an overlay needs at least one lower directory");
    }
    OverlayMount mount;
    for (auto it = lower_snapshots.rbegin(); it != lower_snapshots.rend(); ++it) {
        mount.lowerdirs.push_back(*it);
    }
    mount.upperdir = upperdir;
    mount.workdir = workdir;
    mount.userxattr = rootless;
    for (const auto& path : mount.lowerdirs) {
        if (path.find_first_of(":,") != std::string::npos) {
            return base::invalid_argument("overlay lower directory `{}` contains ':' or ','", path);
        }
    }
    return mount;
}

bool kernel_supports_userns_overlay() {
    struct utsname u;
    if (uname(&u) != 0) {
        return false;
    }
    int major = 0;
    int minor = 0;
    if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) {
        return false;
    }
    return major > 5 || (major == 5 && minor >= 11);
}

base::Result<FlattenStats> flatten_snapshots(const std::vector<std::string>& snapshots,
                                             int target_fd, const FlattenOptions& options) {
    Flattener flattener(target_fd, options);
    for (const auto& snapshot : snapshots) {
        TRY(flattener.copy_layer(snapshot));
    }
    return flattener.stats;
}

}  // namespace locald::layers
