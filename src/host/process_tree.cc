#include "host/process_tree.h"

#include "host/internal/cgroup_delegation.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

namespace locald::host {
namespace {

std::string read_small_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

bool write_small_file(const std::string& path, std::string_view data) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
    ::close(fd);
    return ok;
}

std::string sanitize(std::string_view name) {
    std::string out;
    for (char c : name) {
        out.push_back((std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c
                                                                                            : '_');
    }
    if (out.empty()) {
        out = "service";
    }
    return out.substr(0, 64);
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

bool contains(const std::vector<std::string>& list, const std::string& item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

std::vector<pid_t> read_procs(const std::string& dir) {
    std::vector<pid_t> pids;
    std::istringstream in(read_small_file(dir + "/cgroup.procs"));
    pid_t pid;
    while (in >> pid) {
        pids.push_back(pid);
    }
    return pids;
}

// Enables `controllers` in `dir`'s cgroup.subtree_control: one write (all
// or nothing), then one per controller so that what can be enabled is.
// Returns what failed ("" = nothing).
std::string enable_in(const std::string& dir, const std::vector<std::string>& controllers) {
    if (controllers.empty()) {
        return "";
    }
    std::string all;
    for (const auto& controller : controllers) {
        all += (all.empty() ? "+" : " +") + controller;
    }
    if (write_small_file(dir + "/cgroup.subtree_control", all)) {
        return "";
    }
    std::string why;
    for (const auto& controller : controllers) {
        if (!write_small_file(dir + "/cgroup.subtree_control", "+" + controller)) {
            why += fmt::format("enabling {} in `{}/cgroup.subtree_control`: {}; ", controller, dir,
                               std::strerror(errno));
        }
    }
    return why;
}

}  // namespace

// Makes `controllers` of our own cgroup `own` available to the run
// cgroups under `parent` (`<own>/locald-<pid>`). cgroup v2 hands controllers
// down one level at a time: a cgroup has a controller only when its parent
// enables it in cgroup.subtree_control, and the kernel refuses that (EBUSY)
// while processes live in the parent itself ("no internal processes"; the
// root cgroup is exempt). So when we are alone in `own` — a systemd unit or
// scope with Delegate=yes running only the daemon — we first move ourselves
// into the leaf `<parent>/daemon`; when others share `own` (the shell that
// started us), only what `own` already enables can be used.
void delegate_controllers(const std::string& own, bool own_is_root, const std::string& parent,
                          const std::vector<std::string>& controllers, CgroupSupport* support) {
    auto available = words(read_small_file(own + "/cgroup.controllers"));
    auto enabled = words(read_small_file(own + "/cgroup.subtree_control"));
    std::vector<std::string> missing;
    for (const auto& controller : controllers) {
        if (contains(available, controller) && !contains(enabled, controller)) {
            missing.push_back(controller);
        }
    }
    std::string why;
    if (!missing.empty() && !own_is_root) {
        auto procs = read_procs(own);
        if (procs.size() == 1 && procs[0] == ::getpid()) {
            std::string leaf = parent + "/daemon";
            if ((::mkdir(leaf.c_str(), 0755) != 0 && errno != EEXIST) ||
                !write_small_file(leaf + "/cgroup.procs", std::to_string(::getpid()))) {
                why += fmt::format("moving the daemon into `{}`: {}; ", leaf, std::strerror(errno));
            }
        } else {
            why += fmt::format(
                "other processes share the cgroup `{}` ({} of them), so it cannot "
                "hand controllers down: start the daemon alone in a delegated "
                "cgroup (`systemd-run --user -p Delegate=yes locald daemon`); ",
                own, procs.size());
        }
    }
    if (why.empty()) {
        why += enable_in(own, missing);
    }
    auto parent_available = words(read_small_file(parent + "/cgroup.controllers"));
    std::vector<std::string> hand_down;
    for (const auto& controller : controllers) {
        if (contains(parent_available, controller)) {
            hand_down.push_back(controller);
        }
    }
    why += enable_in(parent, hand_down);
    auto parent_enabled = words(read_small_file(parent + "/cgroup.subtree_control"));
    for (const auto& controller : controllers) {
        if (contains(parent_enabled, controller)) {
            support->controllers.push_back(controller);
        } else if (!contains(available, controller)) {
            why += fmt::format("{} is not delegated to `{}` (cgroup.controllers: `{}`); ",
                               controller, own, fmt::join(available, " "));
        }
    }
    if (!why.empty()) {
        why.resize(why.size() - 2);
    }
    support->controllers_why = why;
}

namespace {

// Tries to make `<dir>/locald-<pid>`; the directory run cgroups go into.
bool try_parent(const std::string& dir, std::string* made, std::string* why) {
    std::string candidate = fmt::format("{}/locald-{}", dir, ::getpid());
    if (::mkdir(candidate.c_str(), 0755) != 0 && errno != EEXIST) {
        *why += fmt::format("mkdir `{}`: {}; ", candidate, std::strerror(errno));
        return false;
    }
    // Writable directory is not enough: joining needs write access to the
    // common ancestor's cgroup.procs (cgroup v2 delegation rules). Check the
    // file we will write.
    if (::access((candidate + "/cgroup.procs").c_str(), W_OK) != 0) {
        *why += fmt::format("`{}/cgroup.procs` not writable; ", candidate);
        ::rmdir(candidate.c_str());
        return false;
    }
    *made = candidate;
    return true;
}

CgroupSupport probe_cgroups() {
    CgroupSupport support;
    std::string why;
    // cgroup2 mount point from mountinfo: "... <mount point> ... - cgroup2 ..."
    std::string v2_mount;
    std::map<std::string, std::string> v1_mounts;  // controller list → mount point
    {
        std::ifstream in("/proc/self/mountinfo");
        std::string line;
        while (std::getline(in, line)) {
            std::istringstream fields(line);
            std::string id, parent, devno, root, mount_point;
            fields >> id >> parent >> devno >> root >> mount_point;
            size_t dash = line.find(" - ");
            if (dash == std::string::npos) {
                continue;
            }
            std::istringstream tail(line.substr(dash + 3));
            std::string fstype, source, options;
            tail >> fstype >> source >> options;
            if (fstype == "cgroup2" && v2_mount.empty()) {
                v2_mount = mount_point;
            } else if (fstype == "cgroup") {
                v1_mounts[options] = mount_point;
            }
        }
    }
    std::string own_v2_path;
    std::string own_pids_path;
    {
        std::ifstream in("/proc/self/cgroup");
        std::string line;
        while (std::getline(in, line)) {
            // "0::/user.slice/..." (v2) or "5:pids:/..." (v1)
            size_t first = line.find(':');
            size_t second = line.find(':', first + 1);
            if (first == std::string::npos || second == std::string::npos) {
                continue;
            }
            std::string controllers = line.substr(first + 1, second - first - 1);
            std::string path = line.substr(second + 1);
            if (line.compare(0, first, "0") == 0 && controllers.empty()) {
                own_v2_path = path;
            } else if (controllers == "pids") {
                own_pids_path = path;
            }
        }
    }
    if (!v2_mount.empty()) {
        // A delegated subtree (our own cgroup) first: that is what an
        // unprivileged user can have; then the root of the hierarchy (root).
        std::vector<std::string> candidates;
        if (!own_v2_path.empty() && own_v2_path != "/") {
            candidates.push_back(v2_mount + own_v2_path);
        }
        candidates.push_back(v2_mount);
        // The first candidate that works, unless a later one (root: the top
        // of the hierarchy) can also hand down more of the limit controllers.
        std::optional<CgroupSupport> chosen;
        for (const auto& dir : candidates) {
            std::string made;
            if (!try_parent(dir, &made, &why)) {
                continue;
            }
            CgroupSupport candidate;
            candidate.version = CgroupSupport::Version::V2;
            candidate.parent = made;
            candidate.mount = v2_mount;
            delegate_controllers(dir, dir == v2_mount, made, {"cpu", "memory", "pids"}, &candidate);
            if (!chosen || candidate.controllers.size() > chosen->controllers.size()) {
                if (chosen) {
                    ::rmdir(chosen->parent.c_str());
                }
                chosen = std::move(candidate);
            } else {
                ::rmdir(made.c_str());
            }
            if (chosen->controllers_why.empty()) {
                break;
            }
        }
        if (chosen) {
            return *chosen;
        }
    } else {
        why += "no cgroup2 mount; ";
    }
    for (const auto& [options, mount_point] : v1_mounts) {
        if (options.find("pids") == std::string::npos) {
            continue;
        }
        std::string made;
        if (try_parent(mount_point + (own_pids_path == "/" ? "" : own_pids_path), &made, &why) ||
            try_parent(mount_point, &made, &why)) {
            support.version = CgroupSupport::Version::V1;
            support.parent = made;
            support.mount = mount_point;
            return support;
        }
    }
    support.why_not = why.empty() ? "no cgroup hierarchy found" : why;
    return support;
}

std::atomic<uint64_t> g_tree_counter{0};

// The cgroups below `dir` (depth first: children before their parent).
void collect_child_cgroups(const std::string& dir, std::vector<std::string>* out) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
        return;
    }
    std::vector<std::string> children;
    while (dirent* entry = ::readdir(d)) {
        if (entry->d_type == DT_DIR && entry->d_name[0] != '.') {
            children.push_back(dir + "/" + entry->d_name);
        }
    }
    ::closedir(d);
    for (const auto& child : children) {
        collect_child_cgroups(child, out);
        out->push_back(child);
    }
}

}  // namespace

size_t end_cgroup_tree(const std::string& dir) {
    const bool v2 = ::access((dir + "/cgroup.kill").c_str(), F_OK) == 0;
    std::vector<std::string> dirs;
    collect_child_cgroups(dir, &dirs);
    dirs.push_back(dir);
    size_t killed = 0;
    for (const auto& cgroup : dirs) {
        for (int attempt = 0; attempt < 200; ++attempt) {
            auto pids = read_procs(cgroup);
            std::erase(pids, ::getpid());  // a daemon's own leaf (never ourselves)
            if (pids.empty()) {
                break;
            }
            if (attempt == 0) {
                killed += pids.size();
            }
            if (!(v2 && write_small_file(cgroup + "/cgroup.kill", "1"))) {
                for (pid_t pid : pids) {
                    ::kill(pid, SIGKILL);
                }
            }
            ::usleep(5000);
        }
        ::rmdir(cgroup.c_str());
    }
    return killed;
}

base::Result<void> become_subreaper() {
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
        return base::errno_error("becoming the child subreaper");
    }
    return base::ok();
}

const CgroupSupport& cgroup_support() {
    static const CgroupSupport support = [] {
        CgroupSupport probed = probe_cgroups();
        if (!probed.parent.empty()) {
            // Our `locald-<pid>` directory goes with us (rmdir only succeeds
            // once every run cgroup in it is gone).
            // The path is copied: this handler runs after `support` is destroyed.
            static char* parent = ::strdup(probed.parent.c_str());
            std::atexit([] { ::rmdir(parent); });
        }
        return probed;
    }();
    return support;
}

size_t kill_stale_cgroups() {
    const CgroupSupport& support = cgroup_support();
    if (support.version == CgroupSupport::Version::None) {
        return 0;
    }
    std::string parent_dir = support.parent.substr(0, support.parent.rfind('/'));
    std::string own = support.parent.substr(support.parent.rfind('/') + 1);
    size_t killed = 0;
    DIR* d = ::opendir(parent_dir.c_str());
    if (!d) {
        return 0;
    }
    std::vector<std::string> stale;
    while (dirent* entry = ::readdir(d)) {
        std::string name = entry->d_name;
        if (entry->d_type != DT_DIR || !name.starts_with("locald-") || name == own) {
            continue;
        }
        char* end = nullptr;
        long pid = std::strtol(name.c_str() + 7, &end, 10);
        if (pid <= 0 || *end != '\0') {
            continue;
        }
        if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) {
            continue;  // that daemon is alive (another LOCALD_HOME)
        }
        stale.push_back(parent_dir + "/" + name);
    }
    ::closedir(d);
    for (const auto& dir : stale) {
        killed += end_cgroup_tree(dir);
    }
    return killed;
}

std::optional<ProcStat> read_proc_stat(pid_t pid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return std::nullopt;
    }
    char buffer[1024];
    ssize_t n = ::read(fd, buffer, sizeof buffer - 1);
    ::close(fd);
    if (n <= 0) {
        return std::nullopt;
    }
    buffer[n] = '\0';
    // comm may contain spaces and parentheses: fields resume after the last ')'.
    char* close = std::strrchr(buffer, ')');
    if (!close) {
        return std::nullopt;
    }
    ProcStat stat;
    stat.pid = pid;
    int ppid = 0, pgrp = 0, session = 0;
    char state = '?';
    unsigned long long start = 0;
    // state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
    // utime stime cutime cstime priority nice num_threads itrealvalue starttime
    int got = std::sscanf(close + 2,
                          "%c %d %d %d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
                          "%*d %llu",
                          &state, &ppid, &pgrp, &session, &start);
    if (got != 5) {
        return std::nullopt;
    }
    stat.state = state;
    stat.ppid = ppid;
    stat.pgrp = pgrp;
    stat.session = session;
    stat.start_time = start;
    return stat;
}

std::vector<pid_t> list_pids() {
    std::vector<pid_t> pids;
    DIR* proc = ::opendir("/proc");
    if (!proc) {
        return pids;
    }
    while (dirent* entry = ::readdir(proc)) {
        char* end = nullptr;
        long pid = std::strtol(entry->d_name, &end, 10);
        if (pid > 0 && *end == '\0') {
            pids.push_back(static_cast<pid_t>(pid));
        }
    }
    ::closedir(proc);
    return pids;
}

base::Result<std::unique_ptr<ProcessTree>> ProcessTree::create(std::string name, TrackMode mode) {
    std::unique_ptr<ProcessTree> tree(new ProcessTree());
    if (mode == TrackMode::ScanOnly) {
        return tree;
    }
    const CgroupSupport& support = cgroup_support();
    if (support.version == CgroupSupport::Version::None) {
        return tree;
    }
    std::string dir = fmt::format("{}/{}-{}", support.parent, sanitize(name), ++g_tree_counter);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
        // The hierarchy worked at probe time; fall back rather than fail.
        return tree;
    }
    tree->m_cgroup_dir = dir;
    tree->m_cgroup_rel = dir.substr(support.mount.size());
    tree->m_cgroup_v2 = support.version == CgroupSupport::Version::V2;
    return tree;
}

ProcessTree::~ProcessTree() {
    if (!m_cgroup_dir.empty()) {
        // A run may have subdivided its cgroup (a container launcher's leaf and
        // its container's cgroup); empty ones go, busy ones fail harmlessly.
        std::vector<std::string> dirs;
        collect_child_cgroups(m_cgroup_dir, &dirs);
        dirs.push_back(m_cgroup_dir);
        for (const auto& dir : dirs) {
            ::rmdir(dir.c_str());
        }
    }
}

std::string ProcessTree::cgroup_procs_path() const {
    return m_cgroup_dir.empty() ? std::string() : m_cgroup_dir + "/cgroup.procs";
}

void ProcessTree::set_leader(pid_t leader) {
    m_leader = leader;
    m_leader_alive = true;
    m_known.clear();
    if (auto stat = read_proc_stat(leader)) {
        m_known[leader] = stat->start_time;
    }
}

std::vector<pid_t> ProcessTree::cgroup_members() {
    std::vector<pid_t> pids = read_procs(m_cgroup_dir);
    // A run may have subdivided its cgroup (v2: a launcher moves itself into
    // a leaf and its container into a limited child): those are the run's too.
    std::vector<std::string> children;
    collect_child_cgroups(m_cgroup_dir, &children);
    for (const auto& child : children) {
        auto more = read_procs(child);
        pids.insert(pids.end(), more.begin(), more.end());
    }
    return pids;
}

void ProcessTree::reap_cgroup_zombies() {
    // Cheap check first: is any child of ours waitable at all? (WNOWAIT: a
    // peek that reaps nothing.) Only then look for the run's zombies.
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) {
        return;
    }
    const pid_t self = ::getpid();
    const std::string suffix = ":" + m_cgroup_rel;
    for (pid_t pid : list_pids()) {
        if (pid == m_leader) {
            continue;
        }
        auto stat = read_proc_stat(pid);
        if (!stat || stat->ppid != self || stat->state != 'Z') {
            continue;
        }
        // A zombie has left cgroup.procs but still names its cgroup here.
        std::istringstream lines(read_small_file(fmt::format("/proc/{}/cgroup", pid)));
        std::string line;
        while (std::getline(lines, line)) {
            if (line.ends_with(suffix) || line.find(suffix + "/") != std::string::npos) {
                ::waitpid(pid, nullptr, WNOHANG);
                break;
            }
        }
    }
}

std::vector<pid_t> ProcessTree::refresh() {
    if (uses_cgroup()) {
        // cgroup.procs is exact (nothing escapes, zombies are not listed): no
        // /proc walk needed unless there is a zombie to reap.
        std::vector<pid_t> live = cgroup_members();
        reap_cgroup_zombies();
        return live;
    }
    const pid_t self = ::getpid();
    std::map<pid_t, ProcStat> all;
    for (pid_t pid : list_pids()) {
        if (auto stat = read_proc_stat(pid)) {
            all[pid] = *stat;
        }
    }
    // Forget pids that died (or were reused: the start time differs).
    for (auto it = m_known.begin(); it != m_known.end();) {
        auto found = all.find(it->first);
        if (found == all.end() || found->second.start_time != it->second) {
            it = m_known.erase(it);
        } else {
            ++it;
        }
    }
    std::set<pid_t> members;
    if (uses_cgroup()) {
        for (pid_t pid : cgroup_members()) {
            members.insert(pid);
        }
    }
    // /proc ancestry in both modes: in cgroup mode it also finds the zombies
    // (which leave cgroup.procs) so they can be reaped.
    for (const auto& [pid, start] : m_known) {
        members.insert(pid);
    }
    if (m_leader > 0) {
        bool grew = true;
        while (grew) {
            grew = false;
            for (const auto& [pid, stat] : all) {
                if (members.count(pid) || pid == self) {
                    continue;
                }
                if (stat.session == m_leader || stat.pgrp == m_leader ||
                    (stat.ppid != self && members.count(stat.ppid))) {
                    members.insert(pid);
                    grew = true;
                }
            }
        }
    }
    std::vector<pid_t> live;
    for (pid_t pid : members) {
        auto found = all.find(pid);
        if (found == all.end()) {
            continue;
        }
        m_known.emplace(pid, found->second.start_time);
        const ProcStat& stat = found->second;
        if (stat.state == 'Z' || stat.state == 'X') {
            // Orphans re-parented to us (the subreaper) are ours to reap; the
            // leader is reaped by the supervisor, which wants its status.
            if (stat.ppid == self && pid != m_leader) {
                ::waitpid(pid, nullptr, WNOHANG);
            }
            continue;
        }
        live.push_back(pid);
    }
    return live;
}

void ProcessTree::signal_all(int sig) {
    if (sig == SIGKILL && uses_cgroup() && m_cgroup_v2 &&
        write_small_file(m_cgroup_dir + "/cgroup.kill", "1")) {
        // cgroup.kill is atomic against forks racing the kill.
    }
    // Membership first: once the leader dies its children are re-parented to
    // us and (after setsid) nothing in /proc ties them to the run any more.
    std::vector<pid_t> members = refresh();
    if (m_leader > 0 && m_leader_alive) {
        // Atomic for the whole group (a fork racing the scan is still hit).
        // Only while the leader is unreaped: a zombie still holds its pid.
        ::kill(-m_leader, sig);
    }
    for (pid_t pid : members) {
        ::kill(pid, sig);
    }
}

}  // namespace locald::host
