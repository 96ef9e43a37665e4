// ns/internal/cgroup.cc — see cgroup.h.
#include "ns/internal/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace locald::ns::internal {

namespace {

std::string read_small(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool write_value(const std::string& path, const std::string& value) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    bool ok = ::write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
    ::close(fd);
    return ok;
}

bool exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

std::string v2_mount() {
    if (exists("/sys/fs/cgroup/cgroup.controllers")) {
        return "/sys/fs/cgroup";
    }
    if (exists("/sys/fs/cgroup/unified/cgroup.controllers")) {
        return "/sys/fs/cgroup/unified";
    }
    return "";
}

std::string own_v2_path() {
    std::istringstream in(read_small("/proc/self/cgroup"));
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

}  // namespace

CgroupSupport probe_cgroups() {
    CgroupSupport support;
    std::string unified = v2_mount();
    bool v1 = exists("/sys/fs/cgroup/memory/memory.limit_in_bytes") ||
              exists("/sys/fs/cgroup/pids/pids.max");
    support.version = unified == "/sys/fs/cgroup" ? "v2" : (unified.empty() ? "v1" : "hybrid");
    if (!unified.empty()) {
        support.v2_own_dir = unified + own_v2_path();
        support.v2_controllers = words(read_small(support.v2_own_dir + "/cgroup.controllers"));
        support.v2_writable =
            ::access(support.v2_own_dir.c_str(), W_OK) == 0 &&
            ::access((support.v2_own_dir + "/cgroup.subtree_control").c_str(), W_OK) == 0;
    }
    support.v1_usable = v1 && ::geteuid() == 0;
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

CgroupPlan prepare_cgroup(const ContainerSpec& spec) {
    CgroupPlan plan;
    if (!spec.resources.any()) {
        return plan;
    }
    auto need = needed_controllers(spec.resources);
    CgroupSupport support = probe_cgroups();
    const Resources& res = spec.resources;
    std::string name = unique_name(spec);

    if (support.v2_writable && has_all(support.v2_controllers, need)) {
        // Enable the controllers for our children. The no-internal-processes
        // rule refuses this while processes live in our own cgroup (EBUSY);
        // then we are not really delegated a subtree and fall through.
        std::string enable;
        for (const auto& c : need) {
            enable += "+" + c + " ";
        }
        std::string dir = support.v2_own_dir + "/" + name;
        if (write_value(support.v2_own_dir + "/cgroup.subtree_control", enable) &&
            ::mkdir(dir.c_str(), 0755) == 0) {
            bool ok = true;
            if (res.memory_bytes) {
                ok &= write_value(dir + "/memory.max", std::to_string(*res.memory_bytes));
                write_value(dir + "/memory.swap.max", "0");
            }
            if (res.cpus) {
                ok &= write_value(dir + "/cpu.max",
                                  fmt::format("{} 100000", std::llround(*res.cpus * 100000)));
            }
            if (res.pids) {
                ok &= write_value(dir + "/pids.max", std::to_string(*res.pids));
            }
            if (ok) {
                plan.kind = CgroupPlan::Kind::V2;
                plan.v2_dir = dir;
                plan.memory_dir = dir;
                return plan;
            }
            ::rmdir(dir.c_str());
        }
    }
    if (support.v1_usable) {
        bool ok = true;
        for (const auto& controller : need) {
            std::string base = "/sys/fs/cgroup/" + controller;
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
                               support.explanation);
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
