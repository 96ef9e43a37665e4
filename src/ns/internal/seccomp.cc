// ns/internal/seccomp.cc — the default seccomp profile, compiled once and cached.
//
// Profile (containers-common spirit): every syscall libseccomp knows for the
// native architecture is allowed except a short list of dangerous ones, which
// fail with EPERM; anything else (syscalls newer than this libseccomp, other
// architectures' numbers) fails with ENOSYS, so a program probing a new
// syscall falls back instead of dying. Like containers-common, mount,
// unshare, setns and pivot_root stay allowed: without CAP_SYS_ADMIN (not in
// the default set) the kernel refuses them anyway, and nested rootless tools
// keep working. Non-native ABIs (i386 int 0x80, x32) are killed.
//
// Compiling ~450 rules costs milliseconds per start, so the BPF is cached
// under `cache_dir` keyed by a hash of the profile, the architecture and the
// libseccomp version (crun does the same).
#include <fcntl.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <set>
#include <string>

#include "base/sys.h"
#include "ns/internal/context.h"

namespace locald::ns::internal {

namespace {

constexpr const char* kProfileVersion = "locald-default-v2";
constexpr int kMaxSyscallNumber = 1024;
constexpr size_t kMaxBpfBytes = 1 << 20;

// EPERM: kernel modules, kexec, keyrings, BPF and perf (kernel attack
// surface), userfaultfd (exploit primitive), swap/reboot/clock/acct/quota
// (host-global state), handle-based opens (bypass the mount namespace, the
// "shocker" escape), raw I/O ports, obsolete calls.
const std::set<std::string>& denied() {
    static const std::set<std::string> names = {
        "acct",
        "add_key",
        "bdflush",
        "bpf",
        "clock_adjtime",
        "clock_settime",
        "create_module",
        "delete_module",
        "finit_module",
        "get_kernel_syms",
        "init_module",
        "ioperm",
        "iopl",
        "kexec_file_load",
        "kexec_load",
        "keyctl",
        "lookup_dcookie",
        "nfsservctl",
        "open_by_handle_at",
        "perf_event_open",
        "query_module",
        "quotactl",
        "quotactl_fd",
        "reboot",
        "request_key",
        "settimeofday",
        "stime",
        "swapoff",
        "swapon",
        "_sysctl",
        "sysfs",
        "uselib",
        "userfaultfd",
        "ustat",
        "vm86",
        "vm86old",
        "vmsplice",
        "syslog",
        "fanotify_init",
        "name_to_handle_at",
    };
    return names;
}

uint64_t fnv1a(std::string_view data, uint64_t hash = 1469598103934665603ULL) {
    for (unsigned char c : data) {
        hash ^= c;
        hash *= 1099511628211ULL;
    }
    return hash;
}

struct Rule {
    int number;
    bool allow;
};

std::vector<Rule> profile_rules(std::string* description) {
    std::vector<Rule> rules;
    for (int nr = 0; nr < kMaxSyscallNumber; ++nr) {
        char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        if (name == nullptr) {
            continue;
        }
        bool allow = !denied().contains(name);
        *description += fmt::format("{}={}:{};", name, nr, allow ? 'A' : 'E');
        std::free(name);
        rules.push_back({nr, allow});
    }
    return rules;
}

base::Result<std::vector<sock_filter>> compile(const std::vector<Rule>& rules) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
    if (ctx == nullptr) {
        return base::internal_error("seccomp_init failed");
    }
    struct Release {
        scmp_filter_ctx ctx;
        ~Release() { seccomp_release(ctx); }
    } release{ctx};
    // A binary tree of syscall numbers instead of libseccomp's default linear
    // chain: with ~450 rules the linear filter runs hundreds of instructions
    // per syscall, and the kernel emulates it for every syscall number when
    // building its allow-bitmap at load time (≈0.25 ms of every start here).
    // The tree needs a few compares; the rules and actions are the same.
    if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2); rc < 0) {
        return base::Error::from_errno(-rc, "seccomp binary-tree optimisation");
    }
    // The kernel may not know every number libseccomp does; add rules by
    // number so the filter is the same whatever the running kernel.
    for (const auto& rule : rules) {
        uint32_t action = rule.allow ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(EPERM);
        int rc = seccomp_rule_add_exact(ctx, action, rule.number, 0);
        if (rc < 0 && rc != -EDOM && rc != -EINVAL) {
            return base::Error::from_errno(-rc,
                                           fmt::format("seccomp rule for syscall {}", rule.number));
        }
    }
    base::UniqueFd memfd(::memfd_create("locald-seccomp", MFD_CLOEXEC));
    if (!memfd) {
        return base::errno_error("memfd_create");
    }
    int rc = seccomp_export_bpf(ctx, memfd.get());
    if (rc < 0) {
        return base::Error::from_errno(-rc, "exporting the seccomp BPF");
    }
    off_t size = ::lseek(memfd.get(), 0, SEEK_END);
    if (size <= 0 || static_cast<size_t>(size) > kMaxBpfBytes ||
        size % static_cast<off_t>(sizeof(sock_filter)) != 0) {
        return base::internal_error("unexpected seccomp BPF size {}", size);
    }
    std::vector<sock_filter> bpf(static_cast<size_t>(size) / sizeof(sock_filter));
    if (::pread(memfd.get(), bpf.data(), static_cast<size_t>(size), 0) != size) {
        return base::errno_error("reading back the seccomp BPF");
    }
    return bpf;
}

std::optional<std::vector<sock_filter>> read_cache(const std::string& path) {
    base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) {
        return std::nullopt;
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() ||
        st.st_size <= 0 || static_cast<size_t>(st.st_size) > kMaxBpfBytes ||
        st.st_size % static_cast<off_t>(sizeof(sock_filter)) != 0) {
        return std::nullopt;
    }
    std::vector<sock_filter> bpf(static_cast<size_t>(st.st_size) / sizeof(sock_filter));
    if (::pread(fd.get(), bpf.data(), static_cast<size_t>(st.st_size), 0) != st.st_size) {
        return std::nullopt;
    }
    return bpf;
}

void write_cache(const std::string& dir, const std::string& path,
                 const std::vector<sock_filter>& bpf) {
    // Best effort: a cache that cannot be written only costs time.
    if (!base::mkdir_p(dir, 0700)) {
        return;
    }
    std::string tmp = fmt::format("{}.tmp-{}", path, ::getpid());
    base::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) {
        return;
    }
    size_t size = bpf.size() * sizeof(sock_filter);
    bool ok =
        ::write(fd.get(), bpf.data(), size) == static_cast<ssize_t>(size) && ::fsync(fd.get()) == 0;
    fd.reset();
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        ::unlink(tmp.c_str());
    }
}

}  // namespace

base::Result<std::vector<sock_filter>> default_seccomp_bpf(const std::string& cache_dir) {
    std::string description = kProfileVersion;
    const struct scmp_version* version = seccomp_version();
    description += fmt::format(";libseccomp={}.{}.{};arch={};", version->major, version->minor,
                               version->micro, seccomp_arch_native());
    // The key covers everything the rules derive from (the deny list, the
    // libseccomp version that names the syscalls, the architecture), so a
    // cache hit needs no enumeration of the syscall table.
    for (const auto& name : denied()) {
        description += name + ",";
    }
    std::string path;
    if (!cache_dir.empty()) {
        path = fmt::format("{}/{:016x}.bpf", cache_dir, fnv1a(description));
        if (auto cached = read_cache(path)) {
            return std::move(*cached);
        }
    }
    std::string listing;
    auto bpf = TRY(compile(profile_rules(&listing)));
    if (!path.empty()) {
        write_cache(cache_dir, path, bpf);
    }
    return bpf;
}

base::Result<void> load_seccomp(ChildContext& ctx) {
    if (ctx.seccomp_bpf.empty()) {
        return base::ok();
    }
    // 29. seccomp is the last thing before execve, so the filter need not
    //     allow anything the setup above used (bwrap's rule).
    struct sock_fprog prog;
    prog.len = static_cast<unsigned short>(ctx.seccomp_bpf.size());
    prog.filter = ctx.seccomp_bpf.data();
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
        return base::errno_error("loading the seccomp filter ({} instructions)", prog.len);
    }
    return base::ok();
}

}  // namespace locald::ns::internal
