// ns/internal/mounts.cc — the rootfs, user mounts and generated /etc files.
//
// Mounts use the fd-based mount API (fsopen/fsmount, open_tree, move_mount,
// mount_setattr): every target inside the rootfs is an O_PATH fd obtained by
// resolving the path *inside* the rootfs (base/confined.h), so a symlink in the
// image can never redirect a mount to the host (CVE-2021-30465 class: no path
// string is re-resolved between the check and the mount).
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "base/confined.h"
#include "ns/internal/context.h"

namespace locald::ns::internal {

namespace {

std::string fs_context_log(int fs_fd) {
    // The kernel keeps human-readable reasons (e.g. overlay's) in the context.
    std::string log;
    char buf[512];
    for (int i = 0; i < 8; ++i) {
        ssize_t n = ::read(fs_fd, buf, sizeof buf - 1);
        if (n <= 0) {
            break;
        }
        if (!log.empty()) {
            log += "; ";
        }
        log.append(buf, static_cast<size_t>(n));
    }
    return log;
}

size_t depth(std::string_view path) {
    return static_cast<size_t>(std::count(path.begin(), path.end(), '/'));
}

}  // namespace

base::Result<base::UniqueFd> new_fs_mount(const char* fstype, const char* source,
                                          const std::vector<std::string>& options,
                                          unsigned int attrs) {
    base::UniqueFd fs(::fsopen(fstype, FSOPEN_CLOEXEC));
    if (!fs) {
        return base::errno_error("fsopen({})", fstype);
    }
    if (source && ::fsconfig(fs.get(), FSCONFIG_SET_STRING, "source", source, 0) != 0) {
        return base::errno_error("fsconfig({} source={})", fstype, source);
    }
    for (const auto& option : options) {
        size_t eq = option.find('=');
        int rc;
        if (eq == std::string::npos) {
            rc = ::fsconfig(fs.get(), FSCONFIG_SET_FLAG, option.c_str(), nullptr, 0);
        } else {
            std::string key = option.substr(0, eq);
            std::string value = option.substr(eq + 1);
            rc = ::fsconfig(fs.get(), FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0);
        }
        if (rc != 0) {
            int err = errno;
            return base::Error::from_errno(
                err, fmt::format("fsconfig({} {}) {}", fstype, option, fs_context_log(fs.get())));
        }
    }
    if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
        int err = errno;
        return base::Error::from_errno(
            err, fmt::format("creating a {} mount {}", fstype, fs_context_log(fs.get())));
    }
    base::UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, attrs));
    if (!mnt) {
        return base::errno_error("fsmount({})", fstype);
    }
    return mnt;
}

base::Result<void> attach_mount(int mount_fd, int target_fd, std::string_view what) {
    if (::move_mount(mount_fd, "", target_fd, "",
                     MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
        return base::errno_error("attaching the mount on `{}`", what);
    }
    return base::ok();
}

base::Result<base::UniqueFd> clone_tree(int dirfd, const char* path, bool recursive, bool read_only,
                                        std::string_view what) {
    unsigned int flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
    if (recursive) {
        flags |= AT_RECURSIVE;
    }
    if (path[0] == '\0') {
        flags |= AT_EMPTY_PATH;
    }
    base::UniqueFd tree(::open_tree(dirfd, path, flags));
    if (!tree) {
        return base::errno_error("open_tree(`{}`)", what);
    }
    if (read_only) {
        struct mount_attr attr = {};
        attr.attr_set = MOUNT_ATTR_RDONLY;
        if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr,
                            sizeof attr) != 0) {
            return base::errno_error("making the bind of `{}` read-only", what);
        }
    }
    return tree;
}

base::Result<base::UniqueFd> open_mount_target(ChildContext& ctx, std::string_view path,
                                               bool directory) {
    int root = ctx.rootfs_fd.get();
    if (directory) {
        return base::mkdir_all_in_root(root, path, 0755);
    }
    auto existing = base::open_in_root(root, path, O_PATH);
    if (existing) {
        return existing;
    }
    if (existing.error().errno_value() != ENOENT) {
        return existing.release_error();
    }
    // The parent may be missing too: create it inside the root, then the leaf.
    size_t slash = path.rfind('/');
    if (slash != std::string_view::npos && slash > 0) {
        TRY(base::mkdir_all_in_root(root, path.substr(0, slash), 0755));
    }
    auto parent = TRY(base::open_parent_in_root(root, path, O_RDONLY | O_DIRECTORY));
    base::UniqueFd created(::openat(parent.dir.get(), parent.leaf.c_str(),
                                    O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!created && errno != EEXIST) {
        return base::errno_error("creating the mount target `{}`", path);
    }
    // EEXIST: another container on the same rootfs created it between our two
    // looks (two services of one read-only builder starting together): use it,
    // through the same confined open as any existing target.
    return base::open_in_root(root, path, O_PATH);
}

base::Result<void> make_mounts_private(ChildContext&) {
    // 7. Our copy of the host's mount table must not propagate back to the host
    //    (or receive host mounts): everything below is private to the container.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        return base::errno_error("making `/` private (MS_REC|MS_PRIVATE)");
    }
    return base::ok();
}

base::Result<void> mount_rootfs(ChildContext& ctx) {
    const Rootfs& rootfs = ctx.spec->rootfs;
    const std::string& path = rootfs.path;
    // 8. The rootfs becomes a mount of its own (pivot_root needs a mount
    //    point). A plain directory is bound onto itself; an overlay (or any
    //    listed mount) is mounted here, from inside the user namespace, which
    //    is what makes an unprivileged overlay with `userxattr` possible.
    if (rootfs.mounts.empty()) {
        auto tree = TRY(clone_tree(AT_FDCWD, path.c_str(), true, false, path));
        base::UniqueFd target(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!target) {
            return base::errno_error("opening the rootfs `{}`", path);
        }
        TRY(attach_mount(tree.get(), target.get(), path));
    }
    for (const auto& mount : rootfs.mounts) {
        bool bind = mount.type == "bind" || mount.type == "rbind";
        bool read_only = false;
        bool recursive = mount.type == "rbind";
        std::string data;
        for (const auto& option : mount.options) {
            if (option == "ro") {
                read_only = true;
            } else if (option == "rbind") {
                recursive = true;
            } else if (option == "bind" || option == "rw") {
                continue;
            } else {
                data += (data.empty() ? "" : ",") + option;
            }
        }
        if (bind) {
            auto tree =
                TRY(clone_tree(AT_FDCWD, mount.source.c_str(), recursive, read_only, mount.source));
            base::UniqueFd target(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
            if (!target) {
                return base::errno_error("opening the rootfs `{}`", path);
            }
            TRY(attach_mount(tree.get(), target.get(), path));
            continue;
        }
        // The overlay's lowerdir list can exceed fsconfig's 256-byte string
        // limit, so the classic mount(2) call (one page of options) is used.
        unsigned long flags = read_only ? MS_RDONLY : 0;
        if (::mount(mount.source.c_str(), path.c_str(), mount.type.c_str(), flags,
                    data.empty() ? nullptr : data.c_str()) != 0) {
            return base::errno_error("mounting {} on `{}` ({})", mount.type, path, data);
        }
    }
    // Open the root *after* mounting so the fd is on the new mount.
    ctx.rootfs_fd.reset(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!ctx.rootfs_fd) {
        return base::errno_error("opening the rootfs `{}`", path);
    }
    ctx.dev_null.reset(::open("/dev/null", O_PATH | O_CLOEXEC));
    if (!ctx.dev_null) {
        return base::errno_error("opening the host's `/dev/null`");
    }
    return base::ok();
}

base::Result<void> mount_user_mounts(ChildContext& ctx) {
    // 12. Binds, volumes and tmpfs from the spec, parents before children so a
    //     bind at /a/b is not hidden by a later mount at /a.
    std::vector<const Mount*> mounts;
    for (const auto& mount : ctx.spec->mounts) {
        mounts.push_back(&mount);
    }
    std::stable_sort(mounts.begin(), mounts.end(), [](const Mount* a, const Mount* b) {
        return depth(a->destination) < depth(b->destination);
    });
    for (const Mount* mount : mounts) {
        if (mount->destination.empty() || mount->destination.front() != '/') {
            return base::invalid_argument("mount destination `{}` is not absolute",
                                          mount->destination);
        }
        if (mount->kind == MountKind::Tmpfs) {
            unsigned int attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
            if (mount->read_only) {
                attrs |= MOUNT_ATTR_RDONLY;
            }
            auto fs = TRY(new_fs_mount("tmpfs", "tmpfs", mount->options, attrs));
            auto target = TRY(open_mount_target(ctx, mount->destination, true));
            TRY(attach_mount(fs.get(), target.get(), mount->destination));
            continue;
        }
        struct stat st;
        if (::stat(mount->source.c_str(), &st) != 0) {
            return base::errno_error("bind source `{}`", mount->source);
        }
        auto tree =
            TRY(clone_tree(AT_FDCWD, mount->source.c_str(), true, mount->read_only, mount->source));
        auto target = TRY(open_mount_target(ctx, mount->destination, S_ISDIR(st.st_mode)));
        TRY(attach_mount(tree.get(), target.get(), mount->destination));
    }
    return base::ok();
}

base::Result<void> mount_etc_files(ChildContext& ctx) {
    if (ctx.etc_dir.empty()) {
        return base::ok();
    }
    // 13. /etc/hosts, /etc/resolv.conf and /etc/hostname come from the
    //     launcher (bound files), so the image's copies are never edited. An
    //     image without /etc whose rootfs we cannot write simply goes without.
    for (const char* name : {"hosts", "resolv.conf", "hostname"}) {
        std::string source = fmt::format("{}/{}", ctx.etc_dir, name);
        std::string destination = fmt::format("/etc/{}", name);
        auto target = open_mount_target(ctx, destination, false);
        if (!target) {
            int err = target.error().errno_value();
            if (err == EROFS || err == EACCES || err == EPERM) {
                continue;
            }
            return target.release_error();
        }
        struct stat st;
        if (::fstat(target->get(), &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;  // a directory or device named /etc/hosts: leave the image alone
        }
        auto tree = TRY(clone_tree(AT_FDCWD, source.c_str(), false, false, source));
        TRY(attach_mount(tree.get(), target->get(), destination));
    }
    return base::ok();
}

base::Result<void> make_rootfs_read_only(ChildContext& ctx) {
    if (!ctx.spec->read_only_rootfs) {
        return base::ok();
    }
    // 19. --read-only: only the root mount; /dev, /proc, volumes and tmpfs
    //     mounts keep their own flags.
    struct mount_attr attr = {};
    attr.attr_set = MOUNT_ATTR_RDONLY;
    if (::mount_setattr(AT_FDCWD, "/", 0, &attr, sizeof attr) != 0) {
        return base::errno_error("making the rootfs read-only");
    }
    return base::ok();
}

}  // namespace locald::ns::internal
