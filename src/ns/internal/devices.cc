// ns/internal/devices.cc — /dev: a tmpfs with host device nodes bound in.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/confined.h"
#include "ns/internal/context.h"

namespace locald::ns::internal {

namespace {

// runtime-spec's default devices. In a user namespace mknod is useless (the
// kernel refuses device nodes from unprivileged mounts), so the host's nodes
// are bound, as crun and bwrap do.
constexpr const char* kDevices[] = {"null", "zero", "full", "random", "urandom", "tty"};

struct DevLink {
    const char* target;
    const char* name;
};
// runtime-spec's required /dev symlinks, plus ptmx into our devpts.
constexpr DevLink kLinks[] = {
    {"/proc/self/fd", "fd"},       {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
    {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},         {"/proc/kcore", "core"},
};

base::Result<void> mount_in_dev(int dev_fd, const char* name, mode_t mode, const char* fstype,
                                const std::vector<std::string>& options, unsigned int attrs) {
    if (::mkdirat(dev_fd, name, mode) != 0) {
        return base::errno_error("mkdir `/dev/{}`", name);
    }
    base::UniqueFd target(::openat(dev_fd, name, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC));
    if (!target) {
        return base::errno_error("opening `/dev/{}`", name);
    }
    auto fs = TRY(new_fs_mount(fstype, fstype, options, attrs));
    return attach_mount(fs.get(), target.get(), fmt::format("/dev/{}", name));
}

}  // namespace

base::Result<void> mount_dev(ChildContext& ctx) {
    // 10. /dev is a fresh tmpfs mounted on a real directory of the rootfs; all
    //     nodes are then created through an fd on *that* tmpfs, so nothing the
    //     image put in /dev (a symlink to /, a fake pts) is ever followed
    //     (CVE-2025-52565, CVE-2026-41579/47766).
    auto target = TRY(open_real_directory(ctx, "/dev"));
    auto fs = TRY(new_fs_mount("tmpfs", "tmpfs", {"mode=755", "size=65536k"},
                               MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC));
    TRY(attach_mount(fs.get(), target.get(), "/dev"));
    base::UniqueFd dev(::openat(fs.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dev) {
        return base::errno_error("opening the new `/dev`");
    }
    for (const char* name : kDevices) {
        base::UniqueFd node(
            ::openat(dev.get(), name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666));
        if (!node) {
            return base::errno_error("creating `/dev/{}`", name);
        }
        base::UniqueFd node_path(::openat(dev.get(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
        if (!node_path) {
            return base::errno_error("opening `/dev/{}`", name);
        }
        std::string host = fmt::format("/dev/{}", name);
        auto tree = clone_tree(AT_FDCWD, host.c_str(), false, false, host);
        if (!tree) {
            if (tree.error().errno_value() == ENOENT) {
                ::unlinkat(dev.get(), name, 0);
                continue;  // a host without /dev/tty (no terminal at all)
            }
            return tree.release_error();
        }
        TRY(attach_mount(tree->get(), node_path.get(), host));
    }
    for (const auto& link : kLinks) {
        if (::symlinkat(link.target, dev.get(), link.name) != 0) {
            return base::errno_error("symlink `/dev/{}` → `{}`", link.name, link.target);
        }
    }
    // A private devpts: the container's ptys are invisible to the host and
    // vice versa. gid=5 (tty) only when that gid is mapped.
    std::vector<std::string> pts_options = {"newinstance", "ptmxmode=0666", "mode=0620"};
    if (ctx.mapping.gid_count() > 5) {
        pts_options.push_back("gid=5");
    }
    TRY(mount_in_dev(dev.get(), "pts", 0755, "devpts", pts_options,
                     MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC));
    TRY(mount_in_dev(dev.get(), "shm", 01777, "tmpfs", {"mode=1777", "size=65536k"},
                     MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
    // mqueue belongs to our ipc namespace.
    TRY(mount_in_dev(dev.get(), "mqueue", 0755, "mqueue", {},
                     MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
    return base::ok();
}

}  // namespace locald::ns::internal
