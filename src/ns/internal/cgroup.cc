// ns/internal/cgroup.cc — see cgroup.h.
#include "ns/internal/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/ranges.h>

namespace locald::ns::internal {

namespace {

std::string read_small(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// False with errno set when the file cannot be written (cgroupfs reports a
// refused value as the write's errno). O_CREAT/O_TRUNC change nothing on cgroupfs
// (its files exist, and it refuses to create others) and lets the unit tests
// run against a plain directory tree.
bool write_value(const std::string& path, const std::string& value) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return false;
    }
    bool ok = ::write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
    int saved = errno;
    ::close(fd);
    errno = ok ? 0 : (saved != 0 ? saved : EIO);
    return ok;
}

bool exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

std::string v2_mount(const CgroupHost& host) {
    if (exists(host.fs_root + "/cgroup.controllers")) {
        return host.fs_root;
    }
    if (exists(host.fs_root + "/unified/cgroup.controllers")) {
        return host.fs_root + "/unified";
    }
    return "";
}

std::string own_v2_path(const CgroupHost& host) {
    std::istringstream in(read_small(host.self_cgroup));
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("0::", 0) == 0) {
            return line.substr(3);
        }
    }
    return "";
}

std::vector<std::string> words(const std::string& text) {
    std::istringstream in(text);
    std::vector<std::string> out;
    std::string word;
    while (in >> word) {
        out.push_back(word);
    }
    return out;
}

std::vector<std::string> needed_controllers(const Resources& resources) {
    std::vector<std::string> out;
    if (resources.memory_bytes) {
        out.push_back("memory");
    }
    if (resources.cpus) {
        out.push_back("cpu");
    }
    if (resources.pids) {
        out.push_back("pids");
    }
    return out;
}

std::string unique_name(const ContainerSpec& spec) {
    std::string name;
    for (char c : spec.name) {
        name += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
    }
    return fmt::format("locald-{}{}{}", name, name.empty() ? "" : "-", ::getpid());
}

bool has_all(const std::vector<std::string>& have, const std::vector<std::string>& need) {
    return std::all_of(need.begin(), need.end(), [&](const std::string& c) {
        return std::find(have.begin(), have.end(), c) != have.end();
    });
}

// Creates `parent/name` with the limits. The controllers must be available
// in `parent` (cgroup.controllers); missing ones are enabled in its
// cgroup.subtree_control, which the kernel refuses (EBUSY) while processes
// live in `parent` itself (no internal processes) — that is why a daemon
// hands its containers a parent of their own.
base::Result<std::string> create_v2_cgroup(const std::string& parent, const std::string& name,
                                           const std::vector<std::string>& need,
                                           const Resources& res) {
    auto available = words(read_small(parent + "/cgroup.controllers"));
    for (const auto& controller : need) {
        if (std::find(available.begin(), available.end(), controller) == available.end()) {
            return base::failed_precondition(
                "the {} controller is not available in the cgroup `{}` (cgroup.controllers: "
                "`{}`)",
                controller, parent, fmt::join(available, " "));
        }
    }
    auto enabled = words(read_small(parent + "/cgroup.subtree_control"));
    std::string enable;
    for (const auto& controller : need) {
        if (std::find(enabled.begin(), enabled.end(), controller) == enabled.end()) {
            enable += (enable.empty() ? "+" : " +") + controller;
        }
    }
    if (!enable.empty() && !write_value(parent + "/cgroup.subtree_control", enable)) {
        return base::errno_error("enabling `{}` in `{}/cgroup.subtree_control`", enable, parent);
    }
    std::string dir = parent + "/" + name;
    if (::mkdir(dir.c_str(), 0755) != 0) {
        return base::errno_error("creating the cgroup `{}`", dir);
    }
    auto fail = [&](const char* file) {
        base::Error error = base::errno_error("writing `{}/{}`", dir, file);
        ::rmdir(dir.c_str());
        return error;
    };
    if (res.memory_bytes) {
        if (!write_value(dir + "/memory.max", std::to_string(*res.memory_bytes))) {
            return fail("memory.max");
        }
        // Best effort: without swap accounting the file does not exist.
        write_value(dir + "/memory.swap.max", "0");
    }
    if (res.cpus && !write_value(dir + "/cpu.max",
                                 fmt::format("{} 100000", std::llround(*res.cpus * 100000)))) {
        return fail("cpu.max");
    }
    if (res.pids && !write_value(dir + "/pids.max", std::to_string(*res.pids))) {
        return fail("pids.max");
    }
    return dir;
}

}  // namespace

CgroupHost system_cgroup_host() {
    CgroupHost host;
    host.is_root = ::geteuid() == 0;
    return host;
}

CgroupSupport probe_cgroups(const CgroupHost& host) {
    CgroupSupport support;
    std::string unified = v2_mount(host);
    bool v1 = exists(host.fs_root + "/memory/memory.limit_in_bytes") ||
              exists(host.fs_root + "/pids/pids.max");
    support.version = unified == host.fs_root ? "v2" : (unified.empty() ? "v1" : "hybrid");
    if (!unified.empty()) {
        support.v2_own_dir = unified + own_v2_path(host);
        support.v2_controllers = words(read_small(support.v2_own_dir + "/cgroup.controllers"));
        support.v2_writable =
            ::access(support.v2_own_dir.c_str(), W_OK) == 0 &&
            ::access((support.v2_own_dir + "/cgroup.subtree_control").c_str(), W_OK) == 0;
    }
    support.v1_usable = v1 && host.is_root;
    if (support.v2_writable && has_all(support.v2_controllers, {"memory", "pids"})) {
        support.explanation =
            fmt::format("cgroup v2 subtree `{}` is delegated to you", support.v2_own_dir);
    } else if (support.v1_usable) {
        support.explanation = "running as root on cgroup v1: the v1 controllers are used";
    } else if (v1 && support.version != "v2") {
        support.explanation =
            "this host uses cgroup v1 controllers, which cannot be delegated to an unprivileged "
            "user: --memory/--cpus/--pids are ignored. Fix: boot with "
            "systemd.unified_cgroup_hierarchy=1 (cgroup v2) and enable delegation "
            "(Delegate=memory pids cpu in user@.service)";
    } else {
        support.explanation = fmt::format(
            "your cgroup `{}` is not delegated to you (or lacks memory/pids controllers): "
            "limits are ignored. Fix: run under a systemd user session with "
            "Delegate=memory pids cpu (systemd-run --user --scope -p Delegate=yes …)",
            support.v2_own_dir);
    }
    return support;
}

CgroupPlan prepare_cgroup(const ContainerSpec& spec, const CgroupHost& host) {
    CgroupPlan plan;
    if (!spec.resources.any()) {
        return plan;
    }
    auto need = needed_controllers(spec.resources);
    CgroupSupport support = probe_cgroups(host);
    const Resources& res = spec.resources;
    std::string name = unique_name(spec);

    // v2: under the parent the caller was delegated, else our own cgroup when
    // it is ours to subdivide.
    std::string v2_parent = !res.cgroup_parent.empty()
                                ? res.cgroup_parent
                                : (support.v2_writable ? support.v2_own_dir : std::string());
    std::string v2_failure;
    if (!v2_parent.empty()) {
        auto dir = create_v2_cgroup(v2_parent, name, need, res);
        if (dir) {
            plan.kind = CgroupPlan::Kind::V2;
            plan.v2_dir = *dir;
            plan.memory_dir = *dir;
            return plan;
        }
        v2_failure = dir.error().to_string();
    }
    if (support.v1_usable) {
        bool ok = true;
        for (const auto& controller : need) {
            std::string base = host.fs_root + "/" + controller;
            if (!exists(base + "/cgroup.procs")) {
                ok = false;
                break;
            }
            std::string parent = base + "/locald";
            ::mkdir(parent.c_str(), 0755);
            std::string dir = parent + "/" + name;
            if (::mkdir(dir.c_str(), 0755) != 0) {
                ok = false;
                break;
            }
            plan.v1_dirs.push_back(dir);
            if (controller == "memory") {
                ok &=
                    write_value(dir + "/memory.limit_in_bytes", std::to_string(*res.memory_bytes));
                // Without a memsw limit the payload could swap past the limit.
                write_value(dir + "/memory.memsw.limit_in_bytes",
                            std::to_string(*res.memory_bytes));
                plan.memory_dir = dir;
            } else if (controller == "cpu") {
                ok &= write_value(dir + "/cpu.cfs_period_us", "100000");
                ok &= write_value(dir + "/cpu.cfs_quota_us",
                                  std::to_string(std::llround(*res.cpus * 100000)));
            } else if (controller == "pids") {
                ok &= write_value(dir + "/pids.max", std::to_string(*res.pids));
            }
        }
        if (ok) {
            plan.kind = CgroupPlan::Kind::V1;
            return plan;
        }
        destroy_cgroup(plan);
        plan = CgroupPlan();
    }
    plan.warning = fmt::format("resource limits are not applied: {} (see `locald doctor`)",
                               !res.cgroup_parent.empty() ? v2_failure : support.explanation);
    return plan;
}

base::Result<void> join_cgroup(const CgroupPlan& plan, pid_t pid) {
    std::string value = std::to_string(pid);
    if (plan.kind == CgroupPlan::Kind::V2) {
        if (!write_value(plan.v2_dir + "/cgroup.procs", value)) {
            return base::errno_error("moving the container into `{}`", plan.v2_dir);
        }
    }
    for (const auto& dir : plan.v1_dirs) {
        if (!write_value(dir + "/cgroup.procs", value)) {
            return base::errno_error("moving the container into `{}`", dir);
        }
    }
    return base::ok();
}

bool cgroup_oom_killed(const CgroupPlan& plan) {
    if (plan.memory_dir.empty()) {
        return false;
    }
    std::string file = plan.kind == CgroupPlan::Kind::V2 ? "/memory.events" : "/memory.oom_control";
    std::istringstream in(read_small(plan.memory_dir + file));
    std::string key;
    long long value = 0;
    while (in >> key >> value) {
        if (key == "oom_kill" && value > 0) {
            return true;
        }
    }
    return false;
}

void destroy_cgroup(const CgroupPlan& plan) {
    std::vector<std::string> dirs = plan.v1_dirs;
    if (!plan.v2_dir.empty()) {
        dirs.push_back(plan.v2_dir);
    }
    for (const auto& dir : dirs) {
        // The last processes of the namespace may take a moment to be freed.
        for (int i = 0; i < 100 && ::rmdir(dir.c_str()) != 0 && errno == EBUSY; ++i) {
            ::usleep(2000);
        }
    }
}

}  // namespace locald::ns::internal
