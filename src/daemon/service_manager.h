// daemon/service_manager.h — every project and service the daemon runs.
//
// Contract:
//   - A project is loaded from its dir with the `up` client's environment
//     (config::load_project); a config error is returned before anything of
//     the project starts or changes.
//   - Each service gets one host::Supervisor. Ports: a service with an `auto`
//     port gets a free one that is kept (persisted in the StateStore) across
//     restarts, `down`/`up` and daemon restarts; a pinned port that is taken
//     fails the service with the holder's name. The ExecPlan's env is the
//     config contract (config::service_env) plus the injected PORT,
//     LOCALD_PROJECT, LOCALD_SERVICE, LOCALD_PORT_<NAME>; the Supervisor adds
//     NOTIFY_SOCKET.
//   - Start requests are gated on `depends_on`: a service starts once every
//     dependency meets its condition (started, healthy, completed,
//     completed_successfully) and fails with the reason when a dependency can
//     no longer meet it. Stops that include several services of a project
//     (down, shutdown, removal on re-apply) stop dependents first and each
//     dependency only once its dependents have fully stopped. A failing
//     service does not stop others unless they depend on it (and then only
//     ones still waiting to start).
//   - Re-applying a project: unchanged services are left alone, changed ones
//     reconfigured and restarted, removed ones stopped and dropped.
//   - Image services (`image = "…"`): before each start from down, a child
//     `locald __prepare-image` pulls/unpacks and makes the writable layer
//     (the service shows `starting` with "pulling …"/"unpacking …" as its
//     reason; a failure makes it `failed` with the child's message); then the
//     supervisor runs `locald __launch <spec.json>` like a host command.
//     Automatic restarts and `restart` keep the writable layer (docker
//     restart); it is removed once the service is down (stopped, exited,
//     failed), and a config change re-prepares it.
//   - Recovery: `recover()` reads the state, ends whatever is left of the
//     previous daemon's runs (pid + start time, session/group, the run's
//     NOTIFY_SOCKET marker in /proc/*/environ, the old cgroup parent), then
//     re-applies every project that should be up.
// All on the event loop's thread. Depends on base, config, host (and, in the .cc,
// ns/spec.h and image/result.h for the container spec, never the unpacker).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/event_loop.h"
#include "base/json.h"
#include "config/spec.h"
#include "daemon/state_store.h"
#include "daemon/userns_holder.h"
#include "host/service_state.h"
#include "host/supervisor.h"

namespace locald::daemon {

class InternalCommand;  // daemon/image_service.h

struct ServiceKey {
    std::string project;
    std::string service;
    std::string qualified() const { return project + ":" + service; }
    friend auto operator<=>(const ServiceKey&, const ServiceKey&) = default;
};

// One row of `locald status`.
struct ServiceView {
    std::string project;
    std::string name;
    std::string kind = "host";
    host::ServiceState state = host::ServiceState::Pending;
    bool waiting = false;  // pending because dependencies are not met yet
    pid_t pid = 0;
    std::optional<uint16_t> port;
    int restarts = 0;
    std::optional<int> exit_code;
    std::optional<host::WallTime> started_at;
    std::optional<host::WallTime> ready_at;
    std::string reason;
    bool preparing = false;  // an image service's image is being pulled/unpacked
};

// The exact `status --json` object (plus "reason" when `with_reason`).
base::Json to_json(const ServiceView& view, bool with_reason = false);
std::string format_time(host::WallTime time);  // RFC 3339 UTC with milliseconds

// True when `view` will not change without a new request or a crash: ready,
// running, exited, failed, stopped (and not waiting for dependencies).
bool is_settled(const ServiceView& view);
// Settled in a way `up` reports as a failure.
bool is_failure(const ServiceView& view);

struct ManagerOptions {
    // Service logs go to `<logs_dir>/<project>/<service>.log`; "" = ring only.
    std::string logs_dir;
    // Persisted ports and desired state; nullptr = nothing persisted.
    StateStore* store = nullptr;
    host::TrackMode track = host::TrackMode::Auto;
};

class ServiceManager {
public:
    static base::Result<std::unique_ptr<ServiceManager>> create(base::EventLoop& loop,
                                                                ManagerOptions options);
    ~ServiceManager();

    // Ends the previous daemon's leftovers and restores desired-up projects.
    base::Result<void> recover();

    // `up`: loads `dir` with `environment`, re-applies it when the project is
    // already known, and requests a start of `only` (all when empty) and their
    // dependencies. Returns the services `up` waits for.
    base::Result<std::vector<ServiceKey>> apply(const std::string& dir,
                                                const config::Environment& environment,
                                                const std::vector<std::string>& only);
    // `down`: stops every service of the project (dependents first) and marks
    // it down. Returns the services being stopped.
    base::Result<std::vector<ServiceKey>> down(const std::string& project);

    // Names as typed: `project:service` or `service` (resolved in the project
    // whose dir contains `cwd`, else in the only project that has it). Empty
    // `names` = every service of the cwd's project (or of all projects when
    // `all_if_empty` and no project contains cwd).
    base::Result<std::vector<ServiceKey>> resolve(const std::vector<std::string>& names,
                                                  const std::string& cwd, bool all_if_empty);
    // The project dir for `cwd`, if a known project contains it.
    std::optional<std::string> project_for_cwd(const std::string& cwd) const;
    std::optional<std::string> project_for_dir(const std::string& dir) const;

    // Requests (return at once; progress through listeners).
    void start(const std::vector<ServiceKey>& keys);
    void stop(const std::vector<ServiceKey>& keys);
    void restart(const std::vector<ServiceKey>& keys);
    // Stops everything (dependents first). With `forget`, projects are marked
    // down in the state (locald shutdown); without, they come back with the
    // next daemon (SIGTERM, upgrade).
    void stop_all(bool forget);
    bool all_down() const;

    std::vector<ServiceView> views() const;
    std::optional<ServiceView> view(const ServiceKey& key) const;
    host::Supervisor* supervisor(const ServiceKey& key);
    // The services `key` depends on (its project's names), in spec order.
    std::vector<std::string> dependencies(const ServiceKey& key) const;
    std::vector<ServiceKey> keys() const;

    // The environment and workdir `key` runs with (for `run` and `env`).
    struct RunContext {
        std::vector<config::EnvEntry> env;
        std::string workdir;
        std::vector<std::string> argv;
        std::string project_dir;  // where the project's config lives
        bool image = false;       // an `image =` service: a one-off runs in a container
    };
    base::Result<RunContext> run_context(const ServiceKey& key);

    using Listener = std::function<void(const ServiceView&)>;
    uint64_t add_listener(Listener listener);
    void remove_listener(uint64_t id);

private:
    struct Service;
    struct Project;

    ServiceManager(base::EventLoop& loop, ManagerOptions options);
    base::Result<std::unique_ptr<Service>> make_service(Project& project,
                                                        const config::ServiceSpec& spec);
    base::Result<host::SupervisorOptions> supervisor_options(const Project& project,
                                                             const config::ServiceSpec& spec);
    base::Result<void> assign_ports(Project& project);
    std::map<std::string, uint16_t> port_map(const Project& project) const;
    void request_start(Project& project, Service& service);
    void on_status(Project& project, Service& service);
    void schedule_pump();
    void pump();
    bool try_start_gated(Project& project, Service& service);
    ServiceView make_view(const Project& project, const Service& service) const;
    void notify(const Project& project, const Service& service);
    // Schedules one write of the state for the end of this loop turn (a burst
    // of 20 spawns is one write with its fsyncs, not 20); persist_now() writes.
    void persist();
    void persist_now();
    void record_run(Project& project, Service& service);
    void fail_service(Project& project, Service& service, std::string reason);
    // Image services (daemon/image_service.h): prepare in a child, then
    // launch; remove the writable layer once down for good.
    void start_image(Project& project, Service& service);
    // build = {…}: `locald __provision` first (progress to the service's
    // status and log), then the supervisor; mode "container" (the default)
    // adds `--container` and writes the container's spec.json from its
    // result (build_container_spec) before the launcher runs it.
    // Passes spec.build->env to a provision child: `--env-file` (0600) when
    // there is a data dir.
    base::Result<void> add_build_env(std::vector<std::string>& argv, const Project& project,
                                     const config::ServiceSpec& spec) const;
    void start_provision(Project& project, Service& service);
    void cleanup_image(Project& project, Service& service);
    void cancel_image(Project& project, Service& service);
    void on_image_status(Project& project, Service& service);
    Project* find_project(const std::string& name);
    const Project* find_project(const std::string& name) const;
    Service* find_service(const ServiceKey& key);

    base::EventLoop& m_loop;
    ManagerOptions m_options;
    DaemonState m_state;  // persisted part
    std::vector<std::unique_ptr<Project>> m_projects;
    // Stops waiting for dependents to end first (down, shutdown, removal).
    std::vector<ServiceKey> m_stop_queue;
    bool m_pump_scheduled = false;
    bool m_persist_frozen = false;  // after stop_all(false): keep what the next daemon restores
    bool m_persist_posted = false;  // a persist_now() is queued on the loop
    uint64_t m_next_listener = 1;
    std::vector<std::pair<uint64_t, Listener>> m_listeners;
    std::shared_ptr<bool> m_alive = std::make_shared<bool>(true);
    std::string m_data_dir;  // image services: <data>/services, <data>/volumes
    std::unique_ptr<InternalCommand> m_trash_cleanup;  // a previous daemon's layers
    std::string m_run_dir;                             // the seccomp BPF cache
    // The user namespace every image service joins, made at the first one
    // (daemon/userns_holder.h); null until then.
    std::unique_ptr<UsernsHolder> m_userns_holder;
    std::string user_namespace_for(Service& service);
};

}  // namespace locald::daemon
