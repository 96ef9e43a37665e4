// ns/internal/caps.cc — capabilities and no_new_privs.
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "ns/internal/context.h"

namespace locald::ns::internal {

namespace {

// Index = capability number (linux/capability.h).
constexpr const char* kCapNames[] = {
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
};
constexpr int kKnownCaps = sizeof kCapNames / sizeof kCapNames[0];

int last_cap() {
    static int cached = [] {
        // The running kernel may know more (or fewer) than our table.
        FILE* f = std::fopen("/proc/sys/kernel/cap_last_cap", "re");
        int value = kKnownCaps - 1;
        if (f != nullptr) {
            if (std::fscanf(f, "%d", &value) != 1) {
                value = kKnownCaps - 1;
            }
            std::fclose(f);
        }
        return value;
    }();
    return cached;
}

base::Result<void> set_caps(uint64_t effective, uint64_t permitted, uint64_t inheritable) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {};
    data[0].effective = static_cast<uint32_t>(effective);
    data[1].effective = static_cast<uint32_t>(effective >> 32);
    data[0].permitted = static_cast<uint32_t>(permitted);
    data[1].permitted = static_cast<uint32_t>(permitted >> 32);
    data[0].inheritable = static_cast<uint32_t>(inheritable);
    data[1].inheritable = static_cast<uint32_t>(inheritable >> 32);
    if (::syscall(SYS_capset, &header, data) != 0) {
        return base::errno_error("capset");
    }
    return base::ok();
}

base::Result<void> limit_bounding_set(uint64_t keep) {
    for (int cap = 0; cap <= last_cap(); ++cap) {
        if ((keep >> cap) & 1) {
            continue;
        }
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
            return base::errno_error("dropping capability {} from the bounding set", cap);
        }
    }
    // No ambient capabilities ever: they would survive exec into any binary.
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        return base::errno_error("clearing ambient capabilities");
    }
    return base::ok();
}

}  // namespace

uint64_t default_capabilities() {
    // containers-common DefaultCapabilities: no NET_RAW, MKNOD or AUDIT_WRITE.
    uint64_t set = 0;
    for (int cap :
         {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_KILL, CAP_NET_BIND_SERVICE,
          CAP_SETFCAP, CAP_SETGID, CAP_SETPCAP, CAP_SETUID, CAP_SYS_CHROOT}) {
        set |= uint64_t{1} << cap;
    }
    return set;
}

base::Result<uint64_t> capabilities_from_names(const std::vector<std::string>& names) {
    uint64_t set = 0;
    for (const auto& raw : names) {
        std::string name = raw;
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return std::toupper(c); });
        if (name.rfind("CAP_", 0) == 0) {
            name = name.substr(4);
        }
        if (name == "ALL") {
            for (int cap = 0; cap < kKnownCaps; ++cap) {
                set |= uint64_t{1} << cap;
            }
            continue;
        }
        auto it = std::find(std::begin(kCapNames), std::end(kCapNames), name);
        if (it == std::end(kCapNames)) {
            return base::invalid_argument("unknown capability `{}`", raw);
        }
        set |= uint64_t{1} << (it - std::begin(kCapNames));
    }
    return set;
}

base::Result<void> drop_init_privileges(ChildContext&) {
    // 20. PID 1 only reaps and forwards signals: it keeps CAP_KILL (to signal
    //     a payload running as another uid) and nothing else, cannot gain
    //     privileges, and is not dumpable, so the payload cannot ptrace it or
    //     read its memory through /proc.
    uint64_t keep = uint64_t{1} << CAP_KILL;
    TRY(limit_bounding_set(keep));
    TRY(set_caps(keep, keep, 0));
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        return base::errno_error("prctl(PR_SET_NO_NEW_PRIVS) for init");
    }
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        return base::errno_error("prctl(PR_SET_DUMPABLE, 0)");
    }
    return base::ok();
}

base::Result<void> switch_user_and_capabilities(ChildContext& ctx) {
    const ResolvedUser& user = ctx.user;
    // 24. Bounding set first (needs CAP_SETPCAP, which we still hold): after
    //     it, no exec of any file can regain a capability outside the set.
    TRY(limit_bounding_set(ctx.capabilities));
    // 25. Groups, then gid, then uid (after setuid we could no longer change
    //     the others). With setgroups denied (single mapping) the kernel
    //     keeps our groups fixed and the image's supplementary groups are
    //     not available.
    if (!ctx.mapping.deny_setgroups) {
        if (::setgroups(user.groups.size(), user.groups.data()) != 0) {
            return base::errno_error("setgroups for the user ({} groups)", user.groups.size());
        }
    }
    if (::setresgid(user.gid, user.gid, user.gid) != 0) {
        return base::errno_error("setresgid({}) (is gid {} mapped? the namespace maps 0…{})",
                                 user.gid, user.gid, ctx.mapping.gid_count() - 1);
    }
    if (::setresuid(user.uid, user.uid, user.uid) != 0) {
        return base::errno_error("setresuid({}) (is uid {} mapped? the namespace maps 0…{})",
                                 user.uid, user.uid, ctx.mapping.uid_count() - 1);
    }
    // 26. Effective = permitted = the set for root; nothing for other users
    //     (the kernel already cleared them at setuid, and exec would too).
    //     Inheritable stays empty (CVE-2022-27650: an inheritable set leaks
    //     capabilities into file-capability binaries).
    uint64_t caps = user.uid == 0 ? ctx.capabilities : 0;
    TRY(set_caps(caps, caps, 0));
    return base::ok();
}

base::Result<void> set_no_new_privs(ChildContext&) {
    // 27. no_new_privs: setuid binaries and file capabilities in the image
    //     cannot raise privileges; also lets us load seccomp unprivileged.
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        return base::errno_error("prctl(PR_SET_NO_NEW_PRIVS)");
    }
    return base::ok();
}

}  // namespace locald::ns::internal
