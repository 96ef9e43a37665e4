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

bool has(const std::vector<std::string>& list, const std::string& item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

// The limit a controller carries, for messages ("memory limit (64 MiB)").
std::string describe_limit(const std::string& controller, const Resources& res) {
    if (controller == "memory") {
        int64_t bytes = *res.memory_bytes;
        return bytes % (1 << 20) == 0 ? fmt::format("memory limit ({} MiB)", bytes >> 20)
                                      : fmt::format("memory limit ({} bytes)", bytes);
    }
    if (controller == "cpu") {
        return fmt::format("cpu limit ({} CPUs)", *res.cpus);
    }
    return fmt::format("pids limit ({})", *res.pids);
}

// Creates `parent/name` with the limits of `controllers` (each available in
// `parent`'s cgroup.controllers).
base::Result<std::string> create_v2_cgroup(const std::string& parent, const std::string& name,
                                           const std::vector<std::string>& controllers,
                                           const Resources& res, bool may_move_self) {
    TRY(enable_controllers(parent, controllers, may_move_self));
    std::string dir = parent + "/" + name;
    if (::mkdir(dir.c_str(), 0755) != 0) {
        return base::errno_error("creating the cgroup `{}`", dir);
    }
    auto fail = [&](const char* file) {
        base::Error error = base::errno_error("writing `{}/{}`", dir, file);
        ::rmdir(dir.c_str());
        return error;
    };
    if (has(controllers, "memory")) {
        if (!write_value(dir + "/memory.max", std::to_string(*res.memory_bytes))) {
            return fail("memory.max");
        }
        // Best effort: without swap accounting the file does not exist.
        write_value(dir + "/memory.swap.max", "0");
    }
    if (has(controllers, "cpu") &&
        !write_value(dir + "/cpu.max",
                     fmt::format("{} 100000", std::llround(*res.cpus * 100000)))) {
        return fail("cpu.max");
    }
    if (has(controllers, "pids") && !write_value(dir + "/pids.max", std::to_string(*res.pids))) {
        return fail("pids.max");
    }
    return dir;
}

// Root on a host whose controllers are bound to cgroup v1: one cgroup per
// controller under `<controller>/locald/`.
base::Result<void> create_v1_cgroups(const CgroupHost& host, const std::string& name,
                                     const std::vector<std::string>& controllers,
                                     const Resources& res, CgroupPlan* plan) {
    for (const auto& controller : controllers) {
        std::string parent = host.fs_root + "/" + controller + "/locald";
        ::mkdir(parent.c_str(), 0755);
        std::string dir = parent + "/" + name;
        if (::mkdir(dir.c_str(), 0755) != 0) {
            return base::errno_error("creating the cgroup `{}`", dir);
        }
        plan->v1_dirs.push_back(dir);
        bool ok = true;
        if (controller == "memory") {
            ok = write_value(dir + "/memory.limit_in_bytes", std::to_string(*res.memory_bytes));
            // Without a memsw limit the payload could swap past the limit.
            write_value(dir + "/memory.memsw.limit_in_bytes", std::to_string(*res.memory_bytes));
            plan->memory_events = dir + "/memory.oom_control";
        } else if (controller == "cpu") {
            ok = write_value(dir + "/cpu.cfs_period_us", "100000") &&
                 write_value(dir + "/cpu.cfs_quota_us",
                             std::to_string(std::llround(*res.cpus * 100000)));
        } else if (controller == "pids") {
            ok = write_value(dir + "/pids.max", std::to_string(*res.pids));
        }
        if (!ok) {
            return base::errno_error("writing the {} limit in `{}`", controller, dir);
        }
    }
    return base::ok();
}

}  // namespace

// Enables `controllers` in `parent`'s cgroup.subtree_control. The kernel
// refuses (EBUSY) while processes live in `parent` itself. When `parent` is
// our own cgroup and we are alone in it — the run cgroup the daemon started
// us in — we move into the leaf `<parent>/locald-launch-<pid>` first, as the
// daemon does in its own cgroup: the container's cgroup then sits beside us.
base::Result<void> enable_controllers(const std::string& parent,
                                      const std::vector<std::string>& controllers,
                                      bool may_move_self) {
    auto enabled = words(read_small(parent + "/cgroup.subtree_control"));
    std::string enable;
    for (const auto& controller : controllers) {
        if (!has(enabled, controller)) {
            enable += (enable.empty() ? "+" : " +") + controller;
        }
    }
    if (enable.empty() || write_value(parent + "/cgroup.subtree_control", enable)) {
        return base::ok();
    }
    int error = errno;
    auto procs = words(read_small(parent + "/cgroup.procs"));
    if (error == EBUSY && may_move_self && procs.size() == 1 &&
        procs[0] == std::to_string(::getpid())) {
        std::string leaf = fmt::format("{}/locald-launch-{}", parent, ::getpid());
        if (::mkdir(leaf.c_str(), 0755) != 0 && errno != EEXIST) {
            return base::errno_error("creating the cgroup `{}`", leaf);
        }
        if (!write_value(leaf + "/cgroup.procs", std::to_string(::getpid()))) {
            return base::errno_error("moving the launcher into `{}`", leaf);
        }
        if (write_value(parent + "/cgroup.subtree_control", enable)) {
            return base::ok();
        }
        error = errno;
    }
    errno = error;
    return base::errno_error("enabling `{}` in `{}/cgroup.subtree_control`{}", enable, parent,
                             error == EBUSY ? " (other processes live in that cgroup)" : "");
}

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
    std::vector<std::string> limit_controllers;
    for (const char* controller : {"cpu", "memory", "pids"}) {
        if (has(support.v2_controllers, controller)) {
            limit_controllers.push_back(controller);
        }
    }
    if (support.v2_writable && !limit_controllers.empty()) {
        support.explanation = fmt::format("cgroup v2 subtree `{}` is delegated to you with {}",
                                          support.v2_own_dir, fmt::join(limit_controllers, " "));
        if (limit_controllers.size() < 3) {
            support.explanation +=
                " (the other limits need Delegate=memory pids cpu in user@.service)";
        }
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
            "limits are ignored. Fix: run in a delegated cgroup — `systemd-run --user "
            "--scope -p Delegate=yes locald container run …` for one container, `systemd-run "
            "--user -p Delegate=yes locald daemon` for image services (user@.service needs "
            "Delegate=memory pids cpu)",
            support.v2_own_dir);
    }
    return support;
}

CgroupPlan prepare_cgroup(const ContainerSpec& spec, const CgroupHost& host) {
    CgroupPlan plan;
    if (!spec.resources.any()) {
        return plan;
    }
    const Resources& res = spec.resources;
    CgroupSupport support = probe_cgroups(host);
    std::string name = unique_name(spec);

    // Each limit where this host can apply it: v2 under the parent the caller
    // was delegated (else our own cgroup when it is ours to subdivide), then
    // v1 as root; what is left is named in one warning.
    std::string v2_parent = !res.cgroup_parent.empty()
                                ? res.cgroup_parent
                                : (support.v2_writable ? support.v2_own_dir : std::string());
    auto v2_available = v2_parent.empty() ? std::vector<std::string>()
                                          : words(read_small(v2_parent + "/cgroup.controllers"));
    auto v1_available = [&](const std::string& controller) {
        return support.v1_usable && exists(host.fs_root + "/" + controller + "/cgroup.procs");
    };
    std::vector<std::string> v2_set, v1_set;
    std::vector<std::pair<std::string, std::string>> dropped;  // controller, why
    for (const auto& controller : needed_controllers(res)) {
        if (has(v2_available, controller)) {
            v2_set.push_back(controller);
        } else if (v1_available(controller)) {
            v1_set.push_back(controller);
        } else if (v2_parent.empty()) {
            dropped.emplace_back(controller, support.explanation);
        } else {
            dropped.emplace_back(
                controller,
                fmt::format("the {} controller is not available in the cgroup `{}` "
                            "(cgroup.controllers: `{}`){}",
                            controller, v2_parent, fmt::join(v2_available, " "),
                            support.version == "hybrid" && !host.is_root
                                ? "; this host binds it to cgroup v1, which only root can use"
                                : "; Fix: delegate it (systemd: Delegate=memory pids cpu in "
                                  "user@.service) and run locald in that delegated cgroup"));
        }
    }
    if (!v2_set.empty()) {
        bool own = v2_parent == support.v2_own_dir;
        auto dir = create_v2_cgroup(v2_parent, name, v2_set, res, own);
        if (dir) {
            plan.v2_dir = *dir;
            if (has(v2_set, "memory")) {
                plan.memory_events = *dir + "/memory.events";
            }
        } else {
            for (const auto& controller : v2_set) {
                if (v1_available(controller)) {
                    v1_set.push_back(controller);
                } else {
                    dropped.emplace_back(controller, dir.error().to_string());
                }
            }
        }
    }
    if (!v1_set.empty()) {
        if (auto made = create_v1_cgroups(host, name, v1_set, res, &plan); !made) {
            for (const auto& dir : plan.v1_dirs) {
                ::rmdir(dir.c_str());
            }
            plan.v1_dirs.clear();
            if (plan.memory_events.ends_with("memory.oom_control")) {
                plan.memory_events.clear();
            }
            for (const auto& controller : v1_set) {
                dropped.emplace_back(controller, made.error().to_string());
            }
        }
    }
    for (const auto& [controller, why] : dropped) {
        plan.warning += fmt::format("{}{} is not applied: {}", plan.warning.empty() ? "" : "; ",
                                    describe_limit(controller, res), why);
    }
    if (!plan.warning.empty()) {
        plan.warning += " (see `locald doctor`)";
    }
    return plan;
}

base::Result<void> join_cgroup(const CgroupPlan& plan, pid_t pid) {
    std::string value = std::to_string(pid);
    if (!plan.v2_dir.empty()) {
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
    if (plan.memory_events.empty()) {
        return false;
    }
    // memory.events (v2) and memory.oom_control (v1) both count "oom_kill N".
    std::istringstream in(read_small(plan.memory_events));
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
