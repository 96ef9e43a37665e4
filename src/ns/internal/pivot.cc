// ns/internal/pivot.cc — switching the root to the rootfs.
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ns/internal/context.h"

namespace locald::ns::internal {

base::Result<void> pivot_into_rootfs(ChildContext& ctx) {
    // 18. pivot_root(".", ".") stacks the old root on top of the new one;
    //     detaching it leaves no path back to the host's tree (a chroot would
    //     keep the host mounted and reachable by a privileged payload).
    if (::fchdir(ctx.rootfs_fd.get()) != 0) {
        return base::errno_error("chdir into the rootfs `{}`", ctx.spec->rootfs.path);
    }
    if (::syscall(SYS_pivot_root, ".", ".") != 0) {
        return base::errno_error("pivot_root into `{}`", ctx.spec->rootfs.path);
    }
    if (::umount2(".", MNT_DETACH) != 0) {
        return base::errno_error("detaching the old root");
    }
    if (::chdir("/") != 0) {
        return base::errno_error("chdir `/`");
    }
    // The host's /dev/null is no longer needed; every later path op is
    // relative to the new root.
    ctx.dev_null.reset();
    return base::ok();
}

}  // namespace locald::ns::internal
