// daemon/state_store.h — what the daemon must remember across its own death.
//
// Contract: one JSON document, `<state dir>/state.json`, mode 0600 (it holds the
// environment captured from `locald up`, which may carry tokens), written with
// base::atomic_write_file so a crash leaves the old or the new version, never a
// torn one. It records, per project: its dir, whether it should be up, the
// captured client environment, and per service the desired state, the assigned
// port, and the live run (pid + kernel start time + NOTIFY_SOCKET name) so the
// next daemon can find and end leftovers of a daemon killed with SIGKILL.
// Depends on base only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/json.h"

namespace locald::daemon {

struct RunRecord {
    int64_t pid = 0;
    uint64_t start_time = 0;    // /proc/<pid>/stat field 22, to tell a reused pid
    std::string notify_socket;  // unique per daemon and service: marks descendants
};

struct ServiceRecord {
    bool desired_up = false;
    std::optional<uint16_t> port;  // auto-assigned port, kept across restarts
    std::optional<RunRecord> run;
};

struct ProjectRecord {
    std::string dir;
    bool desired_up = false;
    std::map<std::string, std::string> env;  // the `up` client's environment
    std::map<std::string, ServiceRecord> services;
};

struct DaemonState {
    int64_t daemon_pid = 0;
    std::string cgroup_parent;  // where that daemon made per-run cgroups ("" = none)
    std::map<std::string, ProjectRecord> projects;
};

base::Json to_json(const DaemonState& state);
base::Result<DaemonState> state_from_json(const base::Json& json);

class StateStore {
public:
    explicit StateStore(std::string path) : m_path(std::move(path)) {}
    // A missing file is an empty state; a corrupt one is an error (the daemon
    // logs it, keeps the file aside as state.json.corrupt and starts empty).
    base::Result<DaemonState> load() const;
    base::Result<void> save(const DaemonState& state) const;
    const std::string& path() const { return m_path; }

private:
    std::string m_path;
};

}  // namespace locald::daemon
