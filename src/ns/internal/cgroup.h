// ns/internal/cgroup.h — resource limits for one container (parent side).
//
// Order of preference, per limit: a delegated cgroup v2 subtree we can write
// (memory, cpu, pids); as root on a v1 host, the v1 controllers; otherwise
// that limit is not applied, and one warning names it and why. Only used when
// the spec asks for a limit.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/error.h"
#include "ns/spec.h"

namespace locald::ns::internal {

// Each limit goes where the host can apply it (v2 first, v1 as root), so one
// container may have both a v2 cgroup and v1 ones.
struct CgroupPlan {
    std::string v2_dir;                // the container's cgroup (v2), "" = none
    std::vector<std::string> v1_dirs;  // one per controller (v1)
    std::string memory_events;         // memory.events (v2) / memory.oom_control (v1), if limited
    std::string warning;               // names each limit asked for that cannot apply, and why
};

// What this host offers for `uid` (also used by `locald doctor`).
struct CgroupSupport {
    std::string version;                      // "v2", "v1", "hybrid"
    std::string v2_own_dir;                   // our cgroup in the unified hierarchy, if any
    std::vector<std::string> v2_controllers;  // available in our cgroup
    bool v2_writable = false;                 // we may create children there
    bool v1_usable = false;                   // root with v1 memory/cpu/pids mounted
    std::string explanation;                  // why limits do or do not work, and the fix
};
// Where the cgroup filesystems and our own membership are read: the real
// ones by default; unit tests point them at a fake tree.
struct CgroupHost {
    std::string fs_root = "/sys/fs/cgroup";
    std::string self_cgroup = "/proc/self/cgroup";
    bool is_root = false;  // may use the v1 controllers
};
CgroupHost system_cgroup_host();

CgroupSupport probe_cgroups(const CgroupHost& host = system_cgroup_host());

// Creates the container's cgroup and writes the limits (no process in it yet).
CgroupPlan prepare_cgroup(const ContainerSpec& spec, const CgroupHost& host = system_cgroup_host());
// Enables `controllers` in `parent`'s cgroup.subtree_control. When the
// kernel refuses because processes live in `parent` (EBUSY), `may_move_self`
// and the caller is alone there, the caller first moves into the leaf
// `<parent>/locald-launch-<pid>`.
base::Result<void> enable_controllers(const std::string& parent,
                                      const std::vector<std::string>& controllers,
                                      bool may_move_self);
// Moves `pid` into the cgroup (before it runs anything of the payload).
base::Result<void> join_cgroup(const CgroupPlan& plan, pid_t pid);
// True when the kernel's OOM killer killed something in the cgroup.
bool cgroup_oom_killed(const CgroupPlan& plan);
// Removes the cgroup directories (the processes are gone).
void destroy_cgroup(const CgroupPlan& plan);

}  // namespace locald::ns::internal
