// host/process_tree.h — everything one service run started, found and ended.
//
// Contract: a ProcessTree tracks the processes of one run of a service, so
// that "stopped" means nothing it started is left — including children that
// double-fork or call setsid():
//   - Cgroup mode: the run gets its own cgroup (v2: a subdirectory of the
//     cgroup2 mount under this process's own cgroup when writable, else under
//     the mount root when writable (root); v1: the `pids` hierarchy when
//     writable (root)). Membership is cgroup.procs; nothing escapes.
//   - Scan mode (no writable cgroup): /proc is walked; a process belongs to the
//     run if it was seen before (pids are remembered), or its session or
//     process group is the leader's, or its parent belongs. Orphans are
//     re-parented to the supervising process, which must be a child subreaper
//     (`become_subreaper()`, the daemon calls it at startup) so a double-forked
//     grandchild stays in our subtree and is remembered. A process that
//     setsid()s *and* double-forks faster than one scan can escape in this
//     mode; cgroup mode has no such window.
// Zombies that are our children and belong to the run are reaped by
// `refresh()`; `signal_all()` signals the process group and every member.
// Depends on base only.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"

namespace locald::host {

// prctl(PR_SET_CHILD_SUBREAPER, 1) for the calling process. The daemon must
// call this once at startup (tests do too).
base::Result<void> become_subreaper();

// Where per-run cgroups can be made on this machine, probed once.
struct CgroupSupport {
    enum class Version { None, V2, V1 };
    Version version = Version::None;
    std::string parent;   // directory under which run cgroups are created
    std::string mount;    // mount point of that hierarchy (parent is below it)
    std::string why_not;  // when None: what was tried and why it failed
    // v2: the limit controllers (cpu, memory, pids) enabled for the run
    // cgroups under `parent`, so a run (a container launcher) can subdivide
    // its cgroup with limits; and why any of them is missing ("" = none is).
    std::vector<std::string> controllers;
    std::string controllers_why;
};
// Probes (and creates `<parent>/locald-<pid>`), cached after the first call.
const CgroupSupport& cgroup_support();

// Leftovers of a previous daemon that died (even by kill -9): every
// `locald-<pid>` directory beside ours whose <pid> is no longer running has
// its processes SIGKILLed (cgroup.kill / per pid) and its directories
// removed. Directories of live daemons (other LOCALD_HOMEs) are untouched.
// Returns the number of processes killed. A no-op without cgroup support (the
// daemon's own state file is then the only record of what ran).
size_t kill_stale_cgroups();

// SIGKILLs every process in the cgroup `dir` and the cgroups below it
// (cgroup.kill on v2, else per pid; never the caller) and removes them, depth
// first. Returns the number of processes killed.
size_t end_cgroup_tree(const std::string& dir);

enum class TrackMode { Auto, ScanOnly };

class ProcessTree {
public:
    // `name` is only used for the cgroup directory name (sanitised).
    static base::Result<std::unique_ptr<ProcessTree>> create(std::string name, TrackMode mode);
    ~ProcessTree();  // removes the cgroup directory (when empty)

    // Path to write the child's pid to before exec; empty in scan mode.
    std::string cgroup_procs_path() const;
    bool uses_cgroup() const { return !m_cgroup_dir.empty(); }
    // A cgroup2 cgroup: a child can be created in it directly (clone3
    // CLONE_INTO_CGROUP) instead of migrating itself through cgroup.procs.
    bool uses_cgroup_v2() const { return uses_cgroup() && m_cgroup_v2; }
    const std::string& cgroup_dir() const { return m_cgroup_dir; }

    // A new run: `leader` is the main process (session/group leader).
    void set_leader(pid_t leader);
    // The leader has been reaped: its pid (and so its process group id) may be
    // reused, so signal_all() stops signalling the group and signals members only.
    void leader_reaped() { m_leader_alive = false; }

    // Re-reads membership and reaps member zombies that are our children.
    // Returns the live members (zombies excluded).
    std::vector<pid_t> refresh();

    // Sends `sig` to the leader's process group and every live member.
    void signal_all(int sig);

    // True when no live member is left.
    bool empty() { return refresh().empty(); }

private:
    ProcessTree() = default;
    std::vector<pid_t> cgroup_members();
    void reap_cgroup_zombies();

    std::string m_cgroup_dir;
    std::string m_cgroup_rel;  // m_cgroup_dir relative to the mount, as in /proc/<pid>/cgroup
    bool m_cgroup_v2 = false;
    pid_t m_leader = 0;
    bool m_leader_alive = false;
    std::map<pid_t, unsigned long long> m_known;  // pid → start time (pid reuse guard)
};

// One process's view from /proc/<pid>/stat.
struct ProcStat {
    pid_t pid = 0;
    pid_t ppid = 0;
    pid_t pgrp = 0;
    pid_t session = 0;
    char state = '?';
    unsigned long long start_time = 0;
};
std::optional<ProcStat> read_proc_stat(pid_t pid);
std::vector<pid_t> list_pids();

}  // namespace locald::host
