// ns/internal/procfs.cc — /proc, /sys, and containers-common's masked and
// read-only paths.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>

#include "base/confined.h"
#include "ns/internal/context.h"

namespace locald::ns::internal {

namespace {

// containers-common pkg/config/default.go (getMaskedPaths) — readable kernel
// state that leaks host information or offers attack surface.
constexpr const char* kMaskedPaths[] = {
    "/proc/acpi",          "/proc/kcore",       "/proc/keys",
    "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi",
    "/proc/timer_list",    "/proc/timer_stats", "/sys/devices/virtual/powercap",
    "/sys/firmware",       "/sys/fs/selinux",   "/proc/interrupts",
};

// containers-common's read-only paths: writable kernel knobs.
constexpr const char* kReadOnlyPaths[] = {
    "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

}  // namespace

// The mount point for a kernel filesystem must be a real directory of the
// rootfs: a symlink named /proc could aim the mount anywhere in the image.
base::Result<base::UniqueFd> open_real_directory(ChildContext& ctx, std::string_view path) {
    auto fd = base::open_in_root(ctx.rootfs_fd.get(), path, O_PATH | O_NOFOLLOW);
    if (!fd && fd.error().errno_value() == ENOENT) {
        return base::mkdir_all_in_root(ctx.rootfs_fd.get(), path, 0555);
    }
    if (!fd) {
        return fd.release_error();
    }
    struct stat st;
    if (::fstat(fd->get(), &st) != 0) {
        return base::errno_error("fstat `{}`", path);
    }
    if (!S_ISDIR(st.st_mode)) {
        return base::invalid_argument("`{}` in the rootfs is not a directory (a symlink?)", path);
    }
    return fd;
}

namespace {

base::Result<void> mask_one(ChildContext& ctx, std::string_view path, base::UniqueFd& first_tmpfs) {
    auto fd = base::open_in_root(ctx.rootfs_fd.get(), path, O_PATH | O_NOFOLLOW);
    if (!fd) {
        int err = fd.error().errno_value();
        if (err == ENOENT || err == ENOTDIR) {
            return base::ok();
        }
        return fd.release_error();
    }
    struct stat st;
    if (::fstat(fd->get(), &st) != 0) {
        return base::errno_error("fstat `{}`", path);
    }
    if (S_ISLNK(st.st_mode)) {
        return base::ok();  // nothing to read through a symlink we do not follow
    }
    if (S_ISDIR(st.st_mode)) {
        // An empty read-only tmpfs; later directories reuse a clone of the first.
        if (!first_tmpfs) {
            auto fs = TRY(new_fs_mount(
                "tmpfs", "tmpfs", {"size=0", "mode=0555"},
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
            TRY(attach_mount(fs.get(), fd->get(), path));
            first_tmpfs = base::open_in_root(ctx.rootfs_fd.get(), path, O_PATH | O_NOFOLLOW)
                              .value_or(base::UniqueFd());
            return base::ok();
        }
        auto tree = TRY(clone_tree(first_tmpfs.get(), "", false, true, path));
        return attach_mount(tree.get(), fd->get(), path);
    }
    // A file: the host's /dev/null (opened outside the rootfs, so a /dev/null
    // symlink in the image cannot be substituted — CVE-2025-31133).
    auto tree = TRY(clone_tree(ctx.dev_null.get(), "", false, true, "/dev/null"));
    return attach_mount(tree.get(), fd->get(), path);
}

}  // namespace

base::Result<void> mount_proc(ChildContext& ctx) {
    // 9. A fresh procfs for our pid namespace: the payload sees only its own
    //    processes. Mounted on a real directory, nosuid/nodev/noexec.
    auto target = TRY(open_real_directory(ctx, "/proc"));
    auto fs = TRY(
        new_fs_mount("proc", "proc", {}, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
    return attach_mount(fs.get(), target.get(), "/proc");
}

base::Result<void> mount_sys(ChildContext& ctx) {
    // 11. /sys read-only. sysfs can only be mounted in a network namespace we
    //     own (network = none); otherwise the host's /sys is bound read-only,
    //     recursively, so no submount (cgroupfs!) stays writable
    //     (CVE-2023-25809).
    auto target = TRY(open_real_directory(ctx, "/sys"));
    unsigned int attrs =
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    if (ctx.spec->network == NetworkMode::None) {
        auto fs = new_fs_mount("sysfs", "sysfs", {}, attrs);
        if (fs) {
            return attach_mount(fs->get(), target.get(), "/sys");
        }
    }
    auto tree = TRY(clone_tree(AT_FDCWD, "/sys", true, true, "/sys"));
    return attach_mount(tree.get(), target.get(), "/sys");
}

base::Result<void> mask_paths(ChildContext& ctx) {
    // 14. Masked paths (containers-common): directories get an empty
    //     read-only tmpfs, files the host's /dev/null.
    base::UniqueFd first_tmpfs;
    for (const char* path : kMaskedPaths) {
        TRY(mask_one(ctx, path, first_tmpfs).context(fmt::format("masking `{}`", path)));
    }
    // The glob /sys/devices/system/cpu/cpu*/thermal_throttle.
    auto cpus = base::open_in_root(ctx.rootfs_fd.get(), "/sys/devices/system/cpu",
                                   O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (cpus) {
        DIR* dir = ::fdopendir(cpus->release());
        if (dir != nullptr) {
            std::vector<std::string> paths;
            while (struct dirent* entry = ::readdir(dir)) {
                std::string_view name = entry->d_name;
                if (name.size() > 3 && name.substr(0, 3) == "cpu" &&
                    std::isdigit(static_cast<unsigned char>(name[3]))) {
                    paths.push_back(
                        fmt::format("/sys/devices/system/cpu/{}/thermal_throttle", name));
                }
            }
            ::closedir(dir);
            for (const auto& path : paths) {
                TRY(mask_one(ctx, path, first_tmpfs).context(fmt::format("masking `{}`", path)));
            }
        }
    }
    return base::ok();
}

base::Result<void> make_paths_read_only(ChildContext& ctx) {
    // 15. Read-only paths (containers-common): kernel knobs stay readable but
    //     cannot be written, even by container root.
    for (const char* path : kReadOnlyPaths) {
        auto fd = base::open_in_root(ctx.rootfs_fd.get(), path, O_PATH | O_NOFOLLOW);
        if (!fd) {
            int err = fd.error().errno_value();
            if (err == ENOENT || err == ENOTDIR) {
                continue;
            }
            return fd.release_error();
        }
        auto tree = TRY(clone_tree(fd->get(), "", true, true, path));
        TRY(attach_mount(tree.get(), fd->get(), path));
    }
    return base::ok();
}

}  // namespace locald::ns::internal
