// ns/doctor.cc — see doctor.h.
#include "ns/doctor.h"

#include <linux/filter.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>

#include "base/userns.h"
#include "ns/internal/cgroup.h"
#include "ns/internal/context.h"
#include "ns/launch_main.h"

namespace locald::ns {

namespace {

// Runs `fn` in a forked child; true when it exits 0.
template <typename Fn>
int in_child(Fn fn) {
    pid_t pid = ::fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        ::_exit(fn());
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string join_ranges(const std::vector<base::IdMap>& map) {
    std::string out;
    for (const auto& entry : map) {
        out += fmt::format("{}{}→{}+{}", out.empty() ? "" : ", ", entry.container_id, entry.host_id,
                           entry.count);
    }
    return out;
}

DoctorCheck check_kernel() {
    DoctorCheck check{"kernel"};
    struct utsname uts;
    ::uname(&uts);
    int major = 0, minor = 0;
    std::sscanf(uts.release, "%d.%d", &major, &minor);
    check.detail = fmt::format("Linux {}", uts.release);
    // mount_setattr (5.12), close_range CLOEXEC (5.11), unprivileged overlay (5.11).
    check.ok = major > 5 || (major == 5 && minor >= 12);
    if (!check.ok) {
        check.fix =
            "locald's launcher needs Linux 5.12 or newer (mount_setattr, "
            "unprivileged overlayfs)";
    }
    return check;
}

DoctorCheck check_userns() {
    DoctorCheck check{"user namespaces"};
    int rc = in_child([] { return ::unshare(CLONE_NEWUSER) == 0 ? 0 : errno; });
    check.ok = rc == 0;
    if (check.ok) {
        check.detail = "an unprivileged user namespace can be created";
    } else {
        check.detail = fmt::format("unshare(CLONE_NEWUSER) failed: {}", std::strerror(rc));
        check.fix =
            "enable unprivileged user namespaces: sysctl kernel.unprivileged_userns_clone=1 "
            "(Debian) and user.max_user_namespaces > 0; on Ubuntu ≥23.10 also "
            "kernel.apparmor_restrict_unprivileged_userns=0";
    }
    return check;
}

DoctorCheck check_helpers() {
    DoctorCheck check{"newuidmap/newgidmap"};
    std::string found;
    bool ok = true;
    for (const char* name : {"newuidmap", "newgidmap"}) {
        auto path = base::find_id_map_helper(name);
        if (!path) {
            ok = false;
            continue;
        }
        struct stat st;
        bool setuid = ::stat(path->c_str(), &st) == 0 && (st.st_mode & S_ISUID) && st.st_uid == 0;
        bool has_caps = ::getxattr(path->c_str(), "security.capability", nullptr, 0) > 0;
        if (!setuid && !has_caps) {
            ok = false;
            found += fmt::format("{} (not setuid root) ", *path);
        } else {
            found += *path + " ";
        }
    }
    check.ok = ok;
    check.detail = found.empty() ? "not installed" : found;
    if (!ok) {
        check.fix = "install the `uidmap` package (setuid newuidmap/newgidmap)";
    }
    return check;
}

DoctorCheck check_mapping(base::IdMapping* out) {
    DoctorCheck check{"subordinate ids"};
    auto mapping = base::container_mapping();
    if (!mapping) {
        check.detail = mapping.error().to_string();
        check.fix = "fix the syntax of /etc/subuid and /etc/subgid (name:start:count)";
        return check;
    }
    *out = *mapping;
    check.detail = fmt::format("uid map {}; gid map {}", join_ranges(mapping->uid_map),
                               join_ranges(mapping->gid_map));
    auto status = base::run_in_user_namespace(*mapping, []() -> base::Result<int> { return 0; });
    if (!status || *status != 0) {
        check.detail +=
            fmt::format("; writing the maps failed: {}",
                        status ? fmt::format("exit {}", *status) : status.error().to_string());
        check.fix =
            "check that /etc/subuid and /etc/subgid ranges belong to you and that "
            "newuidmap/newgidmap are setuid root";
        return check;
    }
    check.ok = true;
    if (!mapping->warning.empty()) {
        check.warning = true;
        check.fix = mapping->warning;
    }
    return check;
}

DoctorCheck check_overlay(const base::IdMapping& mapping) {
    DoctorCheck check{"overlay in a user namespace"};
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = fmt::format("{}/locald-doctor-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (::mkdtemp(dir.data()) == nullptr) {
        check.detail = fmt::format("cannot create a scratch dir: {}", std::strerror(errno));
        return check;
    }
    ::chmod(dir.c_str(), 0755);
    for (const char* sub : {"lower", "upper", "work", "merged"}) {
        std::string path = fmt::format("{}/{}", dir, sub);
        ::mkdir(path.c_str(), 0755);
        if (::geteuid() == 0 && !mapping.uid_map.empty() && !mapping.gid_map.empty()) {
            // As root, container root is a mapped id (a range or nobody): give
            // it the scratch dirs as the layers module gives it the upper dir.
            (void)!::chown(path.c_str(), mapping.uid_map[0].host_id, mapping.gid_map[0].host_id);
        }
    }
    std::string options = fmt::format(
        "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work,"
        "userxattr",
        dir);
    std::string merged = dir + "/merged";
    auto status = base::run_in_user_namespace(
        mapping,
        [&]() -> base::Result<int> {
            if (::mount("overlay", merged.c_str(), "overlay", 0, options.c_str()) != 0) {
                return base::errno_error("mount -t overlay (userxattr)");
            }
            return 0;
        },
        CLONE_NEWNS);
    // The work dir gets a 000 `work` subdir; remove it from inside again.
    (void)base::run_in_user_namespace(mapping, [&]() -> base::Result<int> {
        ::rmdir(fmt::format("{}/work/work", dir).c_str());
        return 0;
    });
    for (const char* sub : {"lower", "upper", "work", "merged"}) {
        ::rmdir(fmt::format("{}/{}", dir, sub).c_str());
    }
    ::rmdir(dir.c_str());
    bool works = status && *status == 0;
    // Containers still run without it (images are flattened into a copy), so a
    // failure here is a warning, not a blocker.
    check.ok = true;
    if (works) {
        check.detail = "overlayfs with userxattr mounts inside a user namespace";
    } else {
        check.warning = true;
        check.detail = status ? fmt::format("exit {}", *status) : status.error().to_string();
        check.fix =
            "images are copied into a flattened rootfs instead (slower, more disk). "
            "Overlay needs Linux ≥5.11 and a filesystem with user xattrs";
    }
    return check;
}

DoctorCheck check_cgroups() {
    DoctorCheck check{"cgroups"};
    auto support = internal::probe_cgroups();
    std::string controllers;
    for (const auto& c : support.v2_controllers) {
        controllers += (controllers.empty() ? "" : " ") + c;
    }
    check.detail = fmt::format("{}; own v2 cgroup `{}` (controllers: {})", support.version,
                               support.v2_own_dir, controllers.empty() ? "none" : controllers);
    bool v2_ok = support.v2_writable;
    check.ok = true;  // containers run either way; limits may not apply
    if (!(v2_ok && !support.v2_controllers.empty()) && !support.v1_usable) {
        check.warning = true;
        check.fix = support.explanation;
    } else {
        check.detail += "; " + support.explanation;
    }
    return check;
}

DoctorCheck check_seccomp() {
    DoctorCheck check{"seccomp"};
    auto bpf = internal::default_seccomp_bpf("");
    if (!bpf) {
        check.detail = bpf.error().to_string();
        check.fix = "libseccomp could not compile the default profile";
        return check;
    }
    std::vector<sock_filter> program = *bpf;
    int rc = in_child([&] {
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
            return 1;
        }
        struct sock_fprog prog {
            static_cast<unsigned short>(program.size()), program.data()
        };
        if (::syscall(SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, 0, &prog) != 0) {
            return 2;
        }
        // A denied syscall must now fail with EPERM.
        errno = 0;
        long r = ::syscall(SYS_kexec_load, 0, 0, nullptr, 0);
        return (r == -1 && errno == EPERM) ? 0 : 3;
    });
    check.ok = rc == 0;
    check.detail = fmt::format("default profile: {} BPF instructions; {}", program.size(),
                               check.ok ? "loads and denies kexec_load with EPERM"
                                        : fmt::format("test child failed ({})", rc));
    if (!check.ok) {
        check.fix = "the kernel needs CONFIG_SECCOMP_FILTER; run with seccomp disabled otherwise";
    }
    return check;
}

}  // namespace

bool userns_overlay_works() {
    auto mapping = base::container_mapping();
    if (!mapping) {
        return false;
    }
    auto check = check_overlay(*mapping);
    return check.ok && !check.warning;
}

DoctorCheck check_launch_executable() {
    DoctorCheck check{"launch executable"};
    // What the daemon will run for an `image =` service.
    auto argv = launch_command("SPEC");
    check.ok = true;
    if (argv.size() == 2) {
        check.detail = fmt::format("{} (image services start without loading the CLI)", argv[0]);
    } else {
        check.warning = true;
        check.detail = fmt::format("no `{}` next to `{}`: image services use `{} __launch`",
                                   kLaunchExecutable, argv[0], argv[0]);
        check.fix = fmt::format(
            "install `{}` from the same build next to `locald` (each container start is "
            "~6 ms faster)",
            kLaunchExecutable);
    }
    return check;
}

std::vector<DoctorCheck> run_doctor_checks() {
    std::vector<DoctorCheck> checks;
    checks.push_back(check_kernel());
    checks.push_back(check_userns());
    checks.push_back(check_helpers());
    base::IdMapping mapping;
    checks.push_back(check_mapping(&mapping));
    if (checks.back().ok) {
        checks.push_back(check_overlay(mapping));
    } else {
        checks.push_back({"overlay in a user namespace", false, false,
                          "skipped: no working user namespace mapping", "fix the checks above"});
    }
    checks.push_back(check_cgroups());
    checks.push_back(check_seccomp());
    checks.push_back(check_launch_executable());
    return checks;
}

base::Json doctor_to_json(const std::vector<DoctorCheck>& checks) {
    base::Json out = base::Json::array();
    for (const auto& check : checks) {
        base::Json item = base::Json::object();
        item.set("name", check.name);
        item.set("status", check.ok ? (check.warning ? "warning" : "ok") : "failed");
        item.set("detail", check.detail);
        item.set("fix", check.fix);
        out.push_back(std::move(item));
    }
    base::Json doc = base::Json::object();
    doc.set("checks", std::move(out));
    bool all_ok = true;
    for (const auto& check : checks) {
        all_ok = all_ok && check.ok;
    }
    doc.set("ok", all_ok);
    return doc;
}

}  // namespace locald::ns
