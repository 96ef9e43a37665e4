#include "daemon/service_manager.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <string_view>
#include <thread>

#include <fmt/ranges.h>

#include "base/log.h"
#include "base/paths.h"
#include "base/sys.h"
#include "daemon/image_service.h"
#include "host/ports.h"
#include "host/process_tree.h"

namespace locald::daemon {

using host::ServiceState;

// ---------------------------------------------------------------- views

std::string format_time(host::WallTime time) {
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
    std::time_t seconds = static_cast<std::time_t>(ms / 1000);
    std::tm utc{};
    ::gmtime_r(&seconds, &utc);
    char text[32];
    std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
    return fmt::format("{}.{:03}Z", text, ms % 1000);
}

base::Json to_json(const ServiceView& view, bool with_reason) {
    auto optional_time = [](const std::optional<host::WallTime>& t) {
        return t ? base::Json(format_time(*t)) : base::Json();
    };
    base::Json json = base::Json::object({
        {"project", view.project},
        {"name", view.name},
        {"kind", view.kind},
        {"state", host::to_string(view.state)},
        {"pid", view.pid > 0 ? base::Json(view.pid) : base::Json()},
        {"port", view.port ? base::Json(*view.port) : base::Json()},
        {"restarts", view.restarts},
        {"exit_code", view.exit_code ? base::Json(*view.exit_code) : base::Json()},
        {"started_at", optional_time(view.started_at)},
        {"ready_at", optional_time(view.ready_at)},
    });
    if (with_reason) {
        json.set("reason", view.reason);
        json.set("waiting", view.waiting);
        if (view.preparing) {
            json.set("preparing", true);  // `reason` is pull/unpack progress
        }
    }
    return json;
}

bool is_settled(const ServiceView& view) {
    if (view.waiting) {
        return false;
    }
    switch (view.state) {
        case ServiceState::Ready:
        case ServiceState::Running:
        case ServiceState::Exited:
        case ServiceState::Failed:
        case ServiceState::Stopped:
            return true;
        default:
            return false;
    }
}

bool is_failure(const ServiceView& view) {
    if (view.state == ServiceState::Failed) {
        return true;
    }
    return view.state == ServiceState::Exited && view.exit_code && *view.exit_code != 0;
}

namespace {

bool is_down(ServiceState state) {
    return state == ServiceState::Pending || state == ServiceState::Stopped ||
           state == ServiceState::Exited || state == ServiceState::Failed;
}

host::RestartMode restart_mode(config::RestartPolicy policy) {
    switch (policy) {
        case config::RestartPolicy::No:
            return host::RestartMode::No;
        case config::RestartPolicy::OnFailure:
            return host::RestartMode::OnFailure;
        case config::RestartPolicy::Always:
            return host::RestartMode::Always;
    }
    return host::RestartMode::OnFailure;
}

std::string kind_name(const config::ServiceSpec& spec) {
    switch (spec.kind) {
        case config::ServiceKind::Host:
            return "host";
        case config::ServiceKind::Image:
            return "image";
        case config::ServiceKind::Build:
            return spec.runs_on_host() ? "host" : "build";
    }
    return "host";
}

// Everything that decides how a run behaves; a re-applied service whose
// fingerprint is unchanged is left alone.
std::string fingerprint(const host::SupervisorOptions& options, const config::ServiceSpec& spec) {
    std::string out;
    auto add = [&](std::string_view part) {
        out += std::to_string(part.size());
        out += ':';
        out += part;
    };
    for (const auto& arg : options.plan.argv) {
        add(arg);
    }
    add("|env");
    for (const auto& entry : options.plan.env) {
        add(entry);
    }
    add(options.plan.cwd);
    add(std::to_string(options.plan.stop_signal));
    add(std::to_string(options.plan.stop_timeout.count()));
    const auto& r = options.restart;
    add(fmt::format("{}/{}/{}/{}/{}", static_cast<int>(r.mode), r.backoff_initial.count(),
                    r.backoff_max.count(), r.min_uptime.count(), r.max_restarts));
    if (options.probe) {
        const auto& p = *options.probe;
        add(fmt::format("{}/{}/{}/{}/{}/{}/{}/{}", static_cast<int>(p.kind), p.port, p.http_path,
                        p.log_pattern, p.interval.count(), p.timeout.count(),
                        p.start_period.count(), p.retries));
        for (const auto& arg : p.exec_argv) {
            add(arg);
        }
    }
    add(options.logs.file_path);
    if (spec.kind == config::ServiceKind::Image) {
        // The launcher's argv is the same for every run: what goes into the
        // container's spec decides.
        add("|image");
        add(spec.image);
        for (const auto& arg : spec.command.to_argv()) {
            add(arg);
        }
        add("|entrypoint");
        for (const auto& arg : spec.entrypoint.to_argv()) {
            add(arg);
        }
        const auto& c = spec.container;
        add(spec.workdir);
        add(c.user);
        for (const auto& v : c.volumes) {
            add(fmt::format("{}:{}:{}:{}", static_cast<int>(v.kind), v.source, v.target,
                            v.read_only));
        }
        add(fmt::format("{}/{}/{}/{}/{}", static_cast<int>(c.network), c.read_only,
                        c.resources.memory_bytes.value_or(0), c.resources.cpus.value_or(0),
                        c.resources.pids.value_or(0)));
    }
    for (const auto& dependency : spec.depends_on) {
        add(dependency.service);
        add(config::to_string(dependency.condition));
    }
    return out;
}

bool environ_has(pid_t pid, const std::string& needle) {
    auto text = base::read_file(fmt::format("/proc/{}/environ", pid), 4u << 20);
    if (!text) {
        return false;
    }
    size_t start = 0;
    while (start < text->size()) {
        size_t end = text->find('\0', start);
        if (end == std::string::npos) {
            end = text->size();
        }
        if (std::string_view(*text).substr(start, end - start) == needle) {
            return true;
        }
        start = end + 1;
    }
    return false;
}

bool alive(pid_t pid) {
    auto stat = host::read_proc_stat(pid);
    return stat && stat->state != 'Z' && stat->state != 'X';
}

// Everything still running from a run of the previous daemon.
std::vector<pid_t> find_leftovers(const RunRecord& run) {
    std::vector<pid_t> found;
    pid_t self = ::getpid();
    std::string marker = run.notify_socket.empty() ? "" : "NOTIFY_SOCKET=" + run.notify_socket;
    for (pid_t pid : host::list_pids()) {
        if (pid == self) {
            continue;
        }
        auto stat = host::read_proc_stat(pid);
        if (!stat || stat->state == 'Z' || stat->state == 'X') {
            continue;
        }
        bool same_run = false;
        if (run.pid > 0) {
            if (pid == run.pid) {
                same_run = stat->start_time == run.start_time;
            } else if ((stat->session == run.pid || stat->pgrp == run.pid) &&
                       stat->start_time >= run.start_time) {
                same_run = true;
            }
        }
        if (!same_run && !marker.empty()) {
            same_run = environ_has(pid, marker);
        }
        if (same_run) {
            found.push_back(pid);
        }
    }
    return found;
}

}  // namespace

// ---------------------------------------------------------------- model

struct ServiceManager::Service {
    config::ServiceSpec spec;
    std::unique_ptr<host::Supervisor> supervisor;  // null for kinds the host cannot run
    uint64_t observer = 0;
    std::string fingerprint;
    bool desired_up = false;
    bool waiting = false;   // start requested, dependencies not met yet
    bool removing = false;  // dropped by a re-apply: delete once down
    std::string failure;    // the manager refused to start it (dependency, port, kind)
    pid_t recorded_pid = 0;
    // Image services: the `__prepare-image` child and its latest progress
    // line, the `--cleanup` child, whether a writable layer may exist, and a
    // re-prepare owed once the current run is down (config change).
    std::unique_ptr<ImagePreparation> preparing;
    std::unique_ptr<InternalCommand> cleaning;
    std::string progress;
    bool layer_live = false;
    bool restart_after_down = false;
    bool is_image() const { return spec.kind == config::ServiceKind::Image; }
    // build = {mode = "host"}: the `__provision` child, before the first run.
    std::unique_ptr<InternalCommand> provisioning;
    bool is_build_host() const {
        return spec.kind == config::ServiceKind::Build && spec.build && spec.runs_on_host();
    }
    // build = {…} with mode "container" (the default): `__provision
    // --container`, then the process in the builder's rootfs (spec.json).
    bool is_build_container() const {
        return spec.kind == config::ServiceKind::Build && spec.build && !spec.runs_on_host();
    }
};

struct ServiceManager::Project {
    std::string name;
    std::string dir;
    config::ProjectSpec spec;
    config::Environment env;
    bool desired_up = false;
    std::vector<std::unique_ptr<Service>> services;  // in definition order

    Service* find(std::string_view service) {
        for (auto& s : services) {
            if (s->spec.name == service) {
                return s.get();
            }
        }
        return nullptr;
    }
};

base::Result<std::unique_ptr<ServiceManager>> ServiceManager::create(base::EventLoop& loop,
                                                                     ManagerOptions options) {
    if (!options.logs_dir.empty()) {
        TRY(base::mkdir_p(options.logs_dir, 0700));
    }
    std::unique_ptr<ServiceManager> manager(new ServiceManager(loop, std::move(options)));
    if (auto paths = base::Paths::from_env()) {
        manager->m_data_dir = paths->data;
        manager->m_run_dir = paths->run;
    }
    return manager;
}

ServiceManager::ServiceManager(base::EventLoop& loop, ManagerOptions options)
    : m_loop(loop), m_options(std::move(options)) {
    m_state.daemon_pid = ::getpid();
}

ServiceManager::~ServiceManager() {
    if (m_persist_posted) {
        persist_now();  // the loop may not run again
    }
    *m_alive = false;
    for (auto& project : m_projects) {
        for (auto& service : project->services) {
            if (service->supervisor && service->observer != 0) {
                service->supervisor->remove_observer(service->observer);
            }
        }
    }
}

ServiceManager::Project* ServiceManager::find_project(const std::string& name) {
    for (auto& project : m_projects) {
        if (project->name == name) {
            return project.get();
        }
    }
    return nullptr;
}

const ServiceManager::Project* ServiceManager::find_project(const std::string& name) const {
    for (const auto& project : m_projects) {
        if (project->name == name) {
            return project.get();
        }
    }
    return nullptr;
}

ServiceManager::Service* ServiceManager::find_service(const ServiceKey& key) {
    Project* project = find_project(key.project);
    return project ? project->find(key.service) : nullptr;
}

// ---------------------------------------------------------------- persistence

void ServiceManager::persist() {
    if (m_options.store == nullptr || m_persist_frozen || m_persist_posted) {
        return;
    }
    m_persist_posted = true;
    std::weak_ptr<bool> alive = m_alive;
    m_loop.post([this, alive] {
        if (!alive.expired() && m_persist_posted) {
            persist_now();
        }
    });
}

void ServiceManager::persist_now() {
    m_persist_posted = false;
    if (m_options.store == nullptr || m_persist_frozen) {
        return;
    }
    for (const auto& project : m_projects) {
        ProjectRecord& record = m_state.projects[project->name];
        record.dir = project->dir;
        record.desired_up = project->desired_up;
        record.env = project->env;
        for (const auto& service : project->services) {
            if (service->removing) {
                continue;
            }
            record.services[service->spec.name].desired_up = service->desired_up;
        }
    }
    if (auto saved = m_options.store->save(m_state); !saved) {
        LOG_ERROR("{}", saved.error().to_string());
    }
}

void ServiceManager::record_run(Project& project, Service& service) {
    if (!service.supervisor) {
        return;
    }
    pid_t pid = service.supervisor->status().pid;
    if (pid == service.recorded_pid) {
        return;
    }
    service.recorded_pid = pid;
    ServiceRecord& record = m_state.projects[project.name].services[service.spec.name];
    if (pid > 0) {
        RunRecord run;
        run.pid = pid;
        if (auto stat = host::read_proc_stat(pid)) {
            run.start_time = stat->start_time;
        }
        run.notify_socket = service.supervisor->notify_socket();
        record.run = run;
    } else {
        record.run.reset();
    }
    persist();
}

// ---------------------------------------------------------------- recovery

base::Result<void> ServiceManager::recover() {
    if (m_options.store == nullptr) {
        return base::ok();
    }
    auto loaded = m_options.store->load();
    DaemonState old;
    if (loaded) {
        old = loaded.release_value();
    } else {
        LOG_ERROR("{}; starting with an empty state (the old file is kept as `{}.corrupt`)",
                  loaded.error().to_string(), m_options.store->path());
        (void)base::rename_path(m_options.store->path(), m_options.store->path() + ".corrupt");
    }

    // 1. End every leftover of the previous daemon: never two copies of a service.
    std::vector<pid_t> victims;
    for (const auto& [project_name, project] : old.projects) {
        for (const auto& [service_name, service] : project.services) {
            if (!service.run) {
                continue;
            }
            for (pid_t pid : find_leftovers(*service.run)) {
                LOG_WARN("ending leftover pid {} of {}:{} from the previous daemon (pid {})", pid,
                         project_name, service_name, old.daemon_pid);
                victims.push_back(pid);
            }
        }
    }
    const host::CgroupSupport& cgroups = host::cgroup_support();
    const std::string& own_parent = cgroups.parent;
    if (cgroups.version == host::CgroupSupport::Version::None) {
        LOG_INFO("no writable cgroup: runs are tracked through /proc ({})", cgroups.why_not);
    } else {
        LOG_INFO("each run gets a cgroup under `{}`; controllers for limits: {}{}", own_parent,
                 cgroups.controllers.empty()
                     ? "none"
                     : fmt::format("{}", fmt::join(cgroups.controllers, " ")),
                 cgroups.controllers_why.empty() ? "" : " (" + cgroups.controllers_why + ")");
    }
    if (!old.cgroup_parent.empty() && old.cgroup_parent != own_parent &&
        old.daemon_pid != ::getpid()) {
        // The old daemon's per-run cgroups: whatever is in them is a leftover
        // (its containers' cgroups below them too); they are removed with it.
        if (auto st = base::stat_path(old.cgroup_parent); st && S_ISDIR(st->st_mode)) {
            host::end_cgroup_tree(old.cgroup_parent);
        }
    }
    for (pid_t pid : victims) {
        ::kill(pid, SIGKILL);
    }
    // Wait (bounded) until they are gone, so their ports are free again.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
        std::erase_if(victims, [](pid_t pid) { return !alive(pid); });
        if (victims.empty()) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!victims.empty()) {
        LOG_ERROR("{} leftover processes of the previous daemon did not exit", victims.size());
    }

    // The previous daemon's writable layers (its containers are gone now):
    // moved aside at once, removed in the background (they may be large, and
    // the CLI waits for this daemon to listen).
    if (!m_data_dir.empty()) {
        auto trash = retire_image_dirs(m_data_dir);
        if (!trash) {
            LOG_ERROR("setting the previous daemon's writable layers aside: {}",
                      trash.error().to_string());
        } else if (!trash->empty()) {
            auto started = start_image_cleanup(m_loop, *trash, [this](std::string error) {
                if (!error.empty()) {
                    LOG_ERROR("removing the previous daemon's writable layers: {}", error);
                }
                m_trash_cleanup.reset();  // allowed: InternalCommand's done may destroy it
            });
            if (!started) {
                LOG_ERROR("removing the previous daemon's writable layers: {}",
                          started.error().to_string());
            } else {
                m_trash_cleanup = started.release_value();
            }
        }
    }

    // 2. Keep the ports and desired state; forget the dead runs.
    m_state = old;
    m_state.daemon_pid = ::getpid();
    m_state.cgroup_parent = own_parent;
    for (auto& [name, project] : m_state.projects) {
        for (auto& [service_name, service] : project.services) {
            service.run.reset();
        }
    }
    persist();

    // 3. Bring back what should be up.
    for (const auto& [name, project] : old.projects) {
        if (!project.desired_up) {
            continue;
        }
        std::vector<std::string> only;
        for (const auto& [service_name, service] : project.services) {
            if (service.desired_up) {
                only.push_back(service_name);
            }
        }
        if (only.empty()) {
            continue;
        }
        config::Environment env(project.env.begin(), project.env.end());
        auto applied = apply(project.dir, env, only);
        if (!applied) {
            LOG_ERROR("restoring project `{}` from `{}`: {}", name, project.dir,
                      applied.error().to_string());
        } else {
            LOG_INFO("restored project `{}` ({} services)", name, applied->size());
        }
    }
    return base::ok();
}

// ---------------------------------------------------------------- building runs

base::Result<void> ServiceManager::assign_ports(Project& project) {
    std::set<uint16_t> taken;
    for (const auto& [name, p] : m_state.projects) {
        for (const auto& [service_name, s] : p.services) {
            if (s.port) {
                taken.insert(*s.port);
            }
        }
    }
    auto& records = m_state.projects[project.name].services;
    bool changed = false;
    for (const auto& spec : project.spec.services) {
        if (spec.port.mode != config::PortSpec::Mode::Auto) {
            continue;
        }
        ServiceRecord& record = records[spec.name];
        if (record.port) {
            continue;
        }
        uint16_t port = TRY(host::allocate_free_port(taken));
        taken.insert(port);
        record.port = port;
        changed = true;
    }
    if (changed) {
        persist();
    }
    return base::ok();
}

std::map<std::string, uint16_t> ServiceManager::port_map(const Project& project) const {
    std::map<std::string, uint16_t> ports;
    auto found = m_state.projects.find(project.name);
    for (const auto& spec : project.spec.services) {
        if (spec.port.mode == config::PortSpec::Mode::Pinned) {
            ports[spec.name] = spec.port.number;
        } else if (spec.port.mode == config::PortSpec::Mode::Auto &&
                   found != m_state.projects.end()) {
            auto s = found->second.services.find(spec.name);
            if (s != found->second.services.end() && s->second.port) {
                ports[spec.name] = *s->second.port;
            }
        }
    }
    return ports;
}

base::Result<host::SupervisorOptions> ServiceManager::supervisor_options(
    const Project& project, const config::ServiceSpec& spec) {
    host::SupervisorOptions options;
    options.name = project.name + ":" + spec.name;
    options.track = m_options.track;
    // A daemon killed with SIGKILL must not leave a service that ignores the
    // PTY hangup running until the next daemon sweeps it.
    options.parent_death_signal = SIGKILL;
    bool image = spec.kind == config::ServiceKind::Image;
    bool build = spec.kind == config::ServiceKind::Build && spec.build;
    if (!image && !build && (!spec.runs_on_host() || spec.command.empty())) {
        return base::unsupported(
            "service `{}` is a {} service; this daemon runs host commands only (the container "
            "runtime is not wired into `up` yet)",
            spec.name, kind_name(spec));
    }
    auto ports = port_map(project);
    auto injected = config::injected_env(project.spec, spec, ports, "");
    auto env = config::service_env(project.spec, spec, project.env, injected);
    if (image) {
        // The supervised process is the launcher (it stays the parent of the
        // container's PID 1); its env carries the service env too, so PORT
        // and the fingerprint work as for host services. `workdir` is a path
        // inside the container: the launcher itself runs in the project dir.
        if (m_data_dir.empty()) {
            return base::failed_precondition("service `{}`: no data dir for image services",
                                             spec.name);
        }
        options.plan.argv =
            launch_argv(image_service_dirs(m_data_dir, project.name, spec.name).spec);
        if (spec.health_check && spec.health_check->kind == config::HealthCheck::Kind::Notify &&
            spec.container.network == config::NetworkMode::None) {
            return base::invalid_argument(
                "{}: service `{}`: a notify health check needs network = \"host\" (the "
                "notify socket is not reachable from network \"none\")",
                spec.health_check->location.to_string(), spec.name);
        }
    } else if (build && !spec.runs_on_host()) {
        // Build mode "container": the daemon provisions (`__provision
        // --container`) and writes the spec; the launcher runs it, as for
        // image services. The build settings and the command go into the
        // fingerprint, so a change re-provisions.
        if (m_data_dir.empty()) {
            return base::failed_precondition("service `{}`: no data dir for build services",
                                             spec.name);
        }
        options.plan.argv =
            launch_argv(image_service_dirs(m_data_dir, project.name, spec.name).spec);
    } else if (build) {
        // Dump Layer: `__run-provisioned` provisions when the dump is
        // missing or stale (its output goes to the service log), then execs
        // the process on the host with the dump's launch env over this env.
        // The build settings are arguments, so a change re-runs the service.
        options.plan.argv = run_provisioned_argv();
        auto& argv = options.plan.argv;
        argv.insert(argv.end(), {"--project", project.name, "--service", spec.name, "--app-dir",
                                 project.dir, "--builder", spec.build->builder});
        for (const auto& buildpack : spec.build->buildpacks) {
            argv.insert(argv.end(), {"--buildpack", buildpack});
        }
        TRY(add_build_env(argv, project, spec));
        if (!spec.process.empty()) {
            argv.insert(argv.end(), {"--process", spec.process});
        }
        // locald's own settings (.env, [env], env_file, PORT …) win over
        // the buildpacks' launch env; the client's environment does not.
        for (const auto& entry : env) {
            if (entry.origin != config::EnvOrigin::Environment) {
                argv.insert(argv.end(), {"--keep", entry.key});
            }
        }
        if (!spec.command.empty()) {
            argv.push_back("--");
            for (const auto& arg :
                 spec.command.form == config::CommandLine::Form::Shell
                     ? std::vector<std::string>{"/bin/sh", "-c", spec.command.shell}
                     : spec.command.argv) {
                argv.push_back(arg);
            }
        }
    } else {
        options.plan.argv = spec.command.to_argv();
    }
    for (const auto& entry : env) {
        options.plan.env.push_back(entry.key + "=" + entry.value);
    }
    options.plan.cwd = image || (build && !spec.runs_on_host()) || spec.workdir.empty()
                           ? project.dir
                           : spec.workdir;
    options.plan.stop_signal = spec.stop_signal.number;
    options.plan.stop_timeout = spec.stop_timeout;

    options.restart.mode = restart_mode(spec.restart);
    options.restart.backoff_initial = spec.backoff.initial;
    options.restart.backoff_max = spec.backoff.max;
    options.restart.min_uptime = spec.min_uptime;
    options.restart.max_restarts = spec.max_restarts;

    // The port the service listens on: its own PORT when it set one, else ours.
    std::optional<uint16_t> port;
    if (const std::string* value = host::find_env(options.plan.env, "PORT")) {
        char* end = nullptr;
        long number = std::strtol(value->c_str(), &end, 10);
        if (end != value->c_str() && *end == '\0' && number > 0 && number < 65536) {
            port = static_cast<uint16_t>(number);
        }
    }
    if (!port) {
        if (auto it = ports.find(spec.name); it != ports.end()) {
            port = it->second;
        }
    }
    if (spec.health_check) {
        const auto& check = *spec.health_check;
        host::ProbeSpec probe;
        switch (check.kind) {
            case config::HealthCheck::Kind::Http:
                probe.kind = host::ProbeKind::Http;
                probe.http_path = check.http_path.empty() ? "/" : check.http_path;
                break;
            case config::HealthCheck::Kind::Tcp:
                probe.kind = host::ProbeKind::Tcp;
                break;
            case config::HealthCheck::Kind::Exec:
                probe.kind = host::ProbeKind::Exec;
                probe.exec_argv = check.command.to_argv();
                break;
            case config::HealthCheck::Kind::Log:
                probe.kind = host::ProbeKind::Log;
                probe.log_pattern = check.pattern;
                break;
            case config::HealthCheck::Kind::Notify:
                probe.kind = host::ProbeKind::Notify;
                break;
        }
        if (probe.kind == host::ProbeKind::Http || probe.kind == host::ProbeKind::Tcp) {
            if (!port) {
                return base::invalid_argument("{}: service `{}` has a {} health check but no port",
                                              check.location.to_string(), spec.name,
                                              host::to_string(probe.kind));
            }
            probe.port = *port;
        }
        probe.interval = check.interval;
        probe.timeout = check.timeout;
        probe.retries = check.retries;
        probe.start_period = check.start_period;
        options.probe = probe;
    } else if (port) {
        // No explicit check: ready once the port accepts connections, polled
        // every 250 ms; a minute of misses fails the start (and, as liveness,
        // a ready service).
        options.probe = host::ProbeSpec::port_open(*port, std::chrono::milliseconds(250));
    }
    if (!m_options.logs_dir.empty()) {
        std::string dir = m_options.logs_dir + "/" + project.name;
        TRY(base::mkdir_p(dir, 0700));
        options.logs.file_path = dir + "/" + spec.name + ".log";
    }
    options.notify_socket = true;
    return options;
}

base::Result<std::unique_ptr<ServiceManager::Service>> ServiceManager::make_service(
    Project& project, const config::ServiceSpec& spec) {
    auto service = std::make_unique<Service>();
    service->spec = spec;
    auto options = supervisor_options(project, spec);
    if (!options) {
        if (options.error().kind() != base::ErrorKind::Unsupported) {
            return options.release_error();
        }
        service->failure = options.error().message();
        return service;
    }
    service->fingerprint = fingerprint(*options, spec);
    service->supervisor = TRY(host::Supervisor::create(m_loop, options.release_value()));
    Project* project_ptr = &project;
    Service* service_ptr = service.get();
    std::weak_ptr<bool> alive = m_alive;
    service->observer =
        service->supervisor->add_observer([this, alive, project_ptr, service_ptr](const auto&) {
            if (!alive.expired()) {
                on_status(*project_ptr, *service_ptr);
            }
        });
    return service;
}

// ---------------------------------------------------------------- requests

std::optional<std::string> ServiceManager::project_for_dir(const std::string& dir) const {
    for (const auto& project : m_projects) {
        if (project->dir == dir) {
            return project->name;
        }
    }
    return std::nullopt;
}

std::optional<std::string> ServiceManager::project_for_cwd(const std::string& cwd) const {
    const Project* best = nullptr;
    for (const auto& project : m_projects) {
        const std::string& dir = project->dir;
        bool inside =
            cwd == dir || (cwd.size() > dir.size() && cwd.compare(0, dir.size(), dir) == 0 &&
                           (dir.back() == '/' || cwd[dir.size()] == '/'));
        if (inside && (best == nullptr || dir.size() > best->dir.size())) {
            best = project.get();
        }
    }
    if (best == nullptr) {
        return std::nullopt;
    }
    return best->name;
}

base::Result<std::vector<ServiceKey>> ServiceManager::apply(const std::string& dir,
                                                            const config::Environment& environment,
                                                            const std::vector<std::string>& only) {
    // 1. Load and validate first: a config error changes nothing.
    config::ProjectSpec spec = TRY(config::load_project(dir, environment));
    Project* project = find_project(spec.name);
    if (project != nullptr && project->dir != spec.dir) {
        return base::already_exists(
            "a project named `{}` is already loaded from `{}`; run `locald down` there first or "
            "give this one another `[project] name`",
            spec.name, project->dir);
    }
    config::Environment env = environment;
    if (project != nullptr && project->desired_up) {
        // A re-apply keeps the environment captured by the `up` that started the
        // project, so a different shell does not count as a change of every service.
        env = project->env;
        spec = TRY(config::load_project(dir, env));
    }
    for (const auto& name : only) {
        if (spec.find_service(name) == nullptr) {
            std::vector<std::string> names;
            for (const auto& s : spec.services) {
                names.push_back(s.name);
            }
            return base::not_found("project `{}` has no service `{}` (it has: {})", spec.name, name,
                                   fmt::join(names, ", "));
        }
    }

    // 2. Compute every new run (may fail) before touching anything running.
    std::unique_ptr<Project> created;
    if (project == nullptr) {
        created = std::make_unique<Project>();
        created->name = spec.name;
        created->dir = spec.dir;
        project = created.get();
    }
    config::ProjectSpec old_spec = std::move(project->spec);
    config::Environment old_env = std::move(project->env);
    project->spec = spec;
    project->env = env;
    if (auto ports = assign_ports(*project); !ports) {
        project->spec = std::move(old_spec);
        project->env = std::move(old_env);
        return ports.release_error();
    }
    struct Change {
        Service* existing = nullptr;
        std::unique_ptr<Service> created;
        std::optional<host::SupervisorOptions> options;
        std::string fingerprint;
        bool changed = false;
    };
    std::vector<Change> changes;
    for (const auto& service_spec : spec.services) {
        Change change;
        change.existing = project->find(service_spec.name);
        if (change.existing != nullptr && change.existing->removing) {
            change.existing = nullptr;  // re-added before the old one finished stopping
        }
        if (change.existing != nullptr && change.existing->supervisor) {
            auto options = supervisor_options(*project, service_spec);
            if (!options) {
                project->spec = std::move(old_spec);
                project->env = std::move(old_env);
                return options.release_error();
            }
            change.fingerprint = fingerprint(*options, service_spec);
            change.changed = change.fingerprint != change.existing->fingerprint;
            change.options = options.release_value();
        } else {
            if (change.existing != nullptr) {
                // It could not run before (unsupported kind); replace it.
                change.existing->removing = true;
                change.existing = nullptr;
            }
            auto made = make_service(*project, service_spec);
            if (!made) {
                project->spec = std::move(old_spec);
                project->env = std::move(old_env);
                return made.release_error();
            }
            change.created = made.release_value();
        }
        changes.push_back(std::move(change));
    }
    if (created) {
        m_projects.push_back(std::move(created));
    }
    // Up from here on (also keeps the pumps below from forgetting it).
    project->desired_up = true;

    // 3. Apply: removed services stop (dependents first) and are dropped.
    std::vector<ServiceKey> removed;
    for (auto& service : project->services) {
        if (spec.find_service(service->spec.name) == nullptr && !service->removing) {
            service->removing = true;
            removed.push_back({project->name, service->spec.name});
        }
    }
    for (const auto& key : removed) {
        m_state.projects[project->name].services.erase(key.service);
    }
    stop(removed);

    std::vector<Service*> changed;
    for (auto& change : changes) {
        if (change.created) {
            project->services.push_back(std::move(change.created));
            continue;
        }
        Service* service = change.existing;
        service->spec = *spec.find_service(service->spec.name);
        if (change.changed) {
            if (auto reconfigured = service->supervisor->reconfigure(std::move(*change.options));
                !reconfigured) {
                LOG_ERROR("reconfiguring {}: {}", service->spec.name,
                          reconfigured.error().to_string());
            }
            service->fingerprint = change.fingerprint;
            changed.push_back(service);
        }
    }
    // Keep definition order (the spec's) for display and start ties.
    std::stable_sort(project->services.begin(), project->services.end(),
                     [&](const auto& a, const auto& b) {
                         auto index = [&](const Service& s) {
                             for (size_t i = 0; i < spec.services.size(); ++i) {
                                 if (spec.services[i].name == s.spec.name) {
                                     return i;
                                 }
                             }
                             return spec.services.size();
                         };
                         return index(*a) < index(*b);
                     });

    // 4. The targets: `only` (or all) plus their dependencies, transitively.
    std::set<std::string> wanted;
    std::vector<std::string> todo = only;
    if (todo.empty()) {
        for (const auto& s : spec.services) {
            todo.push_back(s.name);
        }
    }
    while (!todo.empty()) {
        std::string name = todo.back();
        todo.pop_back();
        if (!wanted.insert(name).second) {
            continue;
        }
        if (const auto* s = spec.find_service(name)) {
            for (const auto& dependency : s->depends_on) {
                todo.push_back(dependency.service);
            }
        }
    }
    project->desired_up = true;
    std::vector<ServiceKey> targets;
    for (const config::ServiceSpec* s : config::start_order(spec)) {
        if (!wanted.contains(s->name)) {
            continue;
        }
        Service* service = project->find(s->name);
        if (service == nullptr) {
            continue;
        }
        // A service may exist twice while an old copy is being removed.
        for (auto& candidate : project->services) {
            if (candidate->spec.name == s->name && !candidate->removing) {
                service = candidate.get();
            }
        }
        targets.push_back({project->name, s->name});
        bool is_changed = std::find(changed.begin(), changed.end(), service) != changed.end();
        bool up = service->supervisor && !is_down(service->supervisor->status().state) &&
                  service->supervisor->status().state != ServiceState::Stopping;
        if (is_changed && service->is_image() && (up || service->preparing)) {
            // A new image, env, volume… needs a new writable layer and spec:
            // stop, then prepare again once down (on_image_status).
            service->desired_up = true;
            service->failure.clear();
            service->supervisor->logs().write_system("configuration changed: restarting");
            if (service->preparing) {
                cancel_image(*project, *service);
                request_start(*project, *service);
            } else {
                service->restart_after_down = true;
                service->supervisor->stop();
            }
        } else if (is_changed && service->is_build_container() && up) {
            // The running container's spec is the old config's: provision
            // and write it again once down (on_status).
            service->desired_up = true;
            service->failure.clear();
            service->supervisor->logs().write_system("configuration changed: restarting");
            service->restart_after_down = true;
            service->supervisor->stop();
        } else if (up && is_changed) {
            service->desired_up = true;
            service->failure.clear();
            service->supervisor->logs().write_system("configuration changed: restarting");
            service->supervisor->restart();
        } else if (!up || !service->desired_up) {
            request_start(*project, *service);
        }
    }
    persist();
    pump();
    return targets;
}

base::Result<std::vector<ServiceKey>> ServiceManager::down(const std::string& name) {
    Project* project = find_project(name);
    if (project == nullptr) {
        return base::not_found("no project `{}` is loaded", name);
    }
    std::vector<ServiceKey> keys;
    for (const auto& service : project->services) {
        keys.push_back({project->name, service->spec.name});
    }
    project->desired_up = false;
    stop(keys);
    persist();
    return keys;
}

base::Result<std::vector<ServiceKey>> ServiceManager::resolve(const std::vector<std::string>& names,
                                                              const std::string& cwd,
                                                              bool all_if_empty) {
    std::optional<std::string> here = project_for_cwd(cwd);
    std::vector<ServiceKey> keys;
    if (names.empty()) {
        for (const auto& project : m_projects) {
            if ((here && project->name == *here) || (!here && all_if_empty)) {
                for (const auto& service : project->services) {
                    if (!service->removing) {
                        keys.push_back({project->name, service->spec.name});
                    }
                }
            }
        }
        if (keys.empty() && !all_if_empty) {
            return base::not_found(
                "no project is loaded for `{}`; name the services (`project:service`) or run "
                "`locald up` first",
                cwd);
        }
        return keys;
    }
    for (const auto& name : names) {
        size_t colon = name.find(':');
        if (colon != std::string::npos) {
            ServiceKey key{name.substr(0, colon), name.substr(colon + 1)};
            Service* service = find_service(key);
            if (service == nullptr || service->removing) {
                return base::not_found("no service `{}` is loaded", name);
            }
            keys.push_back(key);
            continue;
        }
        if (here) {
            Project* project = find_project(*here);
            if (Service* service = project->find(name); service && !service->removing) {
                keys.push_back({*here, name});
                continue;
            }
            return base::not_found("project `{}` (from `{}`) has no service `{}`", *here, cwd,
                                   name);
        }
        std::vector<ServiceKey> matches;
        for (const auto& project : m_projects) {
            if (Service* service = project->find(name); service && !service->removing) {
                matches.push_back({project->name, name});
            }
        }
        if (matches.empty()) {
            return base::not_found("no loaded project has a service `{}`", name);
        }
        if (matches.size() > 1) {
            std::vector<std::string> qualified;
            for (const auto& m : matches) {
                qualified.push_back(m.qualified());
            }
            return base::invalid_argument("`{}` is ambiguous outside a project dir: {}", name,
                                          fmt::join(qualified, ", "));
        }
        keys.push_back(matches.front());
    }
    return keys;
}

void ServiceManager::request_start(Project& project, Service& service) {
    service.desired_up = true;
    service.failure.clear();
    service.waiting = true;
    if (!service.supervisor) {
        auto options = supervisor_options(project, service.spec);
        service.failure = options ? "cannot run" : options.error().message();
        service.waiting = false;
    }
    notify(project, service);
    schedule_pump();
}

void ServiceManager::start(const std::vector<ServiceKey>& keys) {
    // Dependencies first, transitively, in start order.
    std::set<ServiceKey> wanted;
    std::vector<ServiceKey> todo = keys;
    while (!todo.empty()) {
        ServiceKey key = todo.back();
        todo.pop_back();
        if (!wanted.insert(key).second) {
            continue;
        }
        if (Service* service = find_service(key)) {
            for (const auto& dependency : service->spec.depends_on) {
                todo.push_back({key.project, dependency.service});
            }
        }
    }
    for (auto& project : m_projects) {
        bool any = false;
        for (const config::ServiceSpec* s : config::start_order(project->spec)) {
            ServiceKey key{project->name, s->name};
            if (!wanted.contains(key)) {
                continue;
            }
            Service* service = project->find(s->name);
            if (service == nullptr || service->removing) {
                continue;
            }
            any = true;
            bool up = service->supervisor && !is_down(service->supervisor->status().state);
            bool explicitly = std::find(keys.begin(), keys.end(), key) != keys.end();
            if (!up || (explicitly && !service->desired_up)) {
                request_start(*project, *service);
            }
        }
        if (any) {
            project->desired_up = true;
        }
    }
    persist();
    pump();
}

void ServiceManager::stop(const std::vector<ServiceKey>& keys) {
    for (const auto& key : keys) {
        Service* service = find_service(key);
        if (service == nullptr) {
            continue;
        }
        service->desired_up = false;
        service->waiting = false;
        service->failure.clear();
        if (std::find(m_stop_queue.begin(), m_stop_queue.end(), key) == m_stop_queue.end()) {
            m_stop_queue.push_back(key);
        }
        if (Project* project = find_project(key.project)) {
            notify(*project, *service);
        }
    }
    persist();
    pump();
}

void ServiceManager::restart(const std::vector<ServiceKey>& keys) {
    for (const auto& key : keys) {
        Project* project = find_project(key.project);
        Service* service = find_service(key);
        if (project == nullptr || service == nullptr) {
            continue;
        }
        std::erase(m_stop_queue, key);
        service->desired_up = true;
        service->failure.clear();
        project->desired_up = true;
        if (service->restart_after_down) {
            // An image service stopping for a config change comes back
            // re-prepared anyway; a plain restart would reuse the old spec.
        } else if (service->supervisor && !is_down(service->supervisor->status().state)) {
            service->waiting = false;
            service->supervisor->logs().write_system("restart requested");
            service->supervisor->restart();
        } else {
            request_start(*project, *service);
        }
    }
    persist();
    pump();
}

void ServiceManager::stop_all(bool forget) {
    std::vector<ServiceKey> keys;
    for (auto& project : m_projects) {
        if (forget) {
            project->desired_up = false;
        }
        for (const auto& service : project->services) {
            keys.push_back({project->name, service->spec.name});
        }
    }
    if (!forget) {
        // The next daemon restores what runs now: freeze the persisted state.
        persist_now();
        m_persist_frozen = true;
    }
    stop(keys);
    if (forget) {
        persist();
    }
}

bool ServiceManager::all_down() const {
    if (!m_stop_queue.empty()) {
        return false;
    }
    for (const auto& project : m_projects) {
        for (const auto& service : project->services) {
            if (service->supervisor && !is_down(service->supervisor->status().state)) {
                return false;
            }
            if (service->preparing || service->cleaning) {
                return false;
            }
        }
    }
    return true;
}

// ---------------------------------------------------------------- the pump

void ServiceManager::on_status(Project& project, Service& service) {
    if (service.is_image()) {
        on_image_status(project, service);  // before listeners see a transient "stopped"
    } else if (service.is_build_container() && service.supervisor && !service.provisioning) {
        ServiceState state = service.supervisor->status().state;
        if (state == ServiceState::Stopped || state == ServiceState::Exited ||
            state == ServiceState::Failed) {
            bool wanted = service.desired_up && !service.removing;
            if (service.restart_after_down && wanted) {
                service.restart_after_down = false;
                request_start(project, service);  // provision and write the spec afresh
            } else if (!wanted) {
                // Down for good: its spec and generated /etc files go (they
                // are the user's own files; the next start writes them anew).
                service.restart_after_down = false;
                auto dirs = image_service_dirs(m_data_dir, project.name, service.spec.name);
                if (auto removed = base::remove_all(dirs.dir); !removed) {
                    LOG_WARN("{}:{}: removing `{}`: {}", project.name, service.spec.name, dirs.dir,
                             removed.error().to_string());
                }
            }
        }
    }
    record_run(project, service);
    notify(project, service);
    schedule_pump();
}

void ServiceManager::schedule_pump() {
    if (m_pump_scheduled) {
        return;
    }
    m_pump_scheduled = true;
    std::weak_ptr<bool> alive = m_alive;
    m_loop.post([this, alive] {
        if (alive.expired()) {
            return;
        }
        m_pump_scheduled = false;
        pump();
    });
}

void ServiceManager::fail_service(Project& project, Service& service, std::string reason) {
    service.failure = std::move(reason);
    service.waiting = false;
    LOG_WARN("{}:{}: {}", project.name, service.spec.name, service.failure);
    if (service.supervisor) {
        service.supervisor->logs().write_system(service.failure);
    }
    notify(project, service);
}

bool ServiceManager::try_start_gated(Project& project, Service& service) {
    for (const auto& dependency : service.spec.depends_on) {
        Service* dep = project.find(dependency.service);
        if (dep == nullptr) {
            fail_service(project, service,
                         fmt::format("dependency `{}` does not exist", dependency.service));
            return true;
        }
        if (dep->waiting) {
            return false;
        }
        ServiceView view = make_view(project, *dep);
        ServiceState s = view.state;
        bool has_probe = dep->supervisor && dep->supervisor->options().probe.has_value();
        bool stopped_for_good = s == ServiceState::Stopped && !dep->desired_up;
        bool satisfied = false;
        bool impossible = false;
        switch (dependency.condition) {
            case config::DependencyCondition::Started:
                satisfied = (host::is_up(s) && view.pid > 0) || s == ServiceState::Ready ||
                            s == ServiceState::Running || s == ServiceState::Exited;
                impossible = s == ServiceState::Failed || stopped_for_good;
                break;
            case config::DependencyCondition::Healthy:
                satisfied = s == ServiceState::Ready || (s == ServiceState::Running && !has_probe);
                impossible =
                    s == ServiceState::Failed || s == ServiceState::Exited || stopped_for_good;
                break;
            case config::DependencyCondition::Completed:
                satisfied = s == ServiceState::Exited ||
                            (s == ServiceState::Failed && view.exit_code.has_value() &&
                             dep->failure.empty());
                impossible = (s == ServiceState::Failed && !satisfied) || stopped_for_good;
                break;
            case config::DependencyCondition::CompletedSuccessfully:
                satisfied = s == ServiceState::Exited && view.exit_code && *view.exit_code == 0;
                impossible = (s == ServiceState::Exited && !satisfied) ||
                             s == ServiceState::Failed || stopped_for_good;
                break;
        }
        if (satisfied) {
            continue;
        }
        if (impossible) {
            std::string why = view.reason.empty() ? std::string(host::to_string(s)) : view.reason;
            fail_service(
                project, service,
                fmt::format("dependency `{}` cannot become {}: it is {} ({})", dependency.service,
                            config::to_string(dependency.condition), host::to_string(s), why));
            return true;
        }
        return false;
    }

    // Dependencies met. Ports next: a pinned port that is taken is a failure
    // naming the holder; an assigned one that got taken meanwhile is replaced.
    if (service.spec.port.mode == config::PortSpec::Mode::Pinned) {
        if (auto available = host::check_port_available(service.spec.port.number); !available) {
            fail_service(project, service, available.error().message());
            return true;
        }
    } else if (service.spec.port.mode == config::PortSpec::Mode::Auto) {
        auto ports = port_map(project);
        auto it = ports.find(service.spec.name);
        if (it != ports.end() && !host::check_port_available(it->second)) {
            std::set<uint16_t> avoid;
            for (const auto& [n, p] : m_state.projects) {
                for (const auto& [sn, s] : p.services) {
                    if (s.port) {
                        avoid.insert(*s.port);
                    }
                }
            }
            auto fresh = host::allocate_free_port(avoid);
            if (!fresh) {
                fail_service(project, service, fresh.error().message());
                return true;
            }
            service.supervisor->logs().write_system(
                fmt::format("assigned port {} is taken by another program; using port {} instead",
                            it->second, *fresh));
            m_state.projects[project.name].services[service.spec.name].port = *fresh;
            persist();
            auto options = supervisor_options(project, service.spec);
            if (options) {
                service.fingerprint = fingerprint(*options, service.spec);
                (void)service.supervisor->reconfigure(options.release_value());
            }
        }
    }
    if (service.is_image()) {
        if (service.cleaning) {
            return false;  // the previous writable layer is still being removed
        }
        start_image(project, service);
        return true;
    }
    if (service.is_build_host() || service.is_build_container()) {
        start_provision(project, service);
        return true;
    }
    service.waiting = false;
    service.supervisor->start();
    return true;
}

void ServiceManager::pump() {
    // Starts whose dependencies are met, in start order (dependencies first).
    for (auto& project : m_projects) {
        for (const config::ServiceSpec* s : config::start_order(project->spec)) {
            for (auto& service : project->services) {
                if (service->spec.name == s->name && service->waiting && !service->removing) {
                    try_start_gated(*project, *service);
                }
            }
        }
    }
    // Stops whose dependents are down. Repeated while it makes progress: a
    // dependent that was already down unblocks its dependency in the same pump
    // (no status change would come to trigger another one).
    for (bool progress = true; progress;) {
        progress = false;
        auto queue = m_stop_queue;
        for (const auto& key : queue) {
            Project* project = find_project(key.project);
            Service* service = find_service(key);
            if (project == nullptr || service == nullptr) {
                std::erase(m_stop_queue, key);
                continue;
            }
            bool blocked = false;
            for (const auto& other : project->services) {
                if (other.get() == service || !other->supervisor) {
                    continue;
                }
                bool depends =
                    std::any_of(other->spec.depends_on.begin(), other->spec.depends_on.end(),
                                [&](const auto& d) { return d.service == key.service; });
                if (!depends) {
                    continue;
                }
                ServiceKey other_key{project->name, other->spec.name};
                bool being_stopped = std::find(m_stop_queue.begin(), m_stop_queue.end(),
                                               other_key) != m_stop_queue.end() ||
                                     other->supervisor->status().state == ServiceState::Stopping;
                if (being_stopped && !is_down(other->supervisor->status().state)) {
                    blocked = true;
                    break;
                }
                if (std::find(m_stop_queue.begin(), m_stop_queue.end(), other_key) !=
                    m_stop_queue.end()) {
                    blocked = true;  // it has not even been asked yet
                    break;
                }
            }
            if (blocked) {
                continue;
            }
            std::erase(m_stop_queue, key);
            progress = true;
            if (service->preparing) {
                cancel_image(*project, *service);
            }
            if (service->provisioning) {
                service->provisioning.reset();  // kills the child and its helpers
                service->progress.clear();
            }
            if (service->supervisor) {
                service->supervisor->stop();
            }
            notify(*project, *service);
        }
    }
    // Forget projects that are down for good (`down`, `shutdown`): their
    // supervisors, rings and sockets go; ports and logs files stay. Keeps a
    // long-lived daemon's memory bounded by what is up.
    std::erase_if(m_projects, [&](const std::unique_ptr<Project>& project) {
        if (project->desired_up) {
            return false;
        }
        for (const auto& key : m_stop_queue) {
            if (key.project == project->name) {
                return false;
            }
        }
        for (const auto& service : project->services) {
            if (service->waiting || service->preparing || service->cleaning ||
                service->provisioning ||
                (service->supervisor && !is_down(service->supervisor->status().state))) {
                return false;
            }
        }
        for (auto& service : project->services) {
            if (service->supervisor && service->observer != 0) {
                service->supervisor->remove_observer(service->observer);
            }
        }
        return true;
    });
    // Drop removed services once they are down (never from inside their own
    // observer: this runs from a posted task or a request).
    for (auto& project : m_projects) {
        std::erase_if(project->services, [&](const std::unique_ptr<Service>& service) {
            if (!service->removing) {
                return false;
            }
            ServiceKey key{project->name, service->spec.name};
            if (std::find(m_stop_queue.begin(), m_stop_queue.end(), key) != m_stop_queue.end()) {
                return false;
            }
            if (service->supervisor && !is_down(service->supervisor->status().state)) {
                return false;
            }
            if (service->preparing || service->cleaning || service->provisioning) {
                return false;
            }
            if (service->supervisor && service->observer != 0) {
                service->supervisor->remove_observer(service->observer);
            }
            return true;
        });
    }
}

// ---------------------------------------------------------------- image services

void ServiceManager::start_image(Project& project, Service& service) {
    service.waiting = false;
    service.preparing.reset();  // a preparation for an older config (kills it)
    ImageServiceDirs dirs = image_service_dirs(m_data_dir, project.name, service.spec.name);
    if (auto made = base::mkdir_p(dirs.dir, 0700); !made) {
        fail_service(project, service, made.error().to_string());
        return;
    }
    Project* p = &project;
    Service* s = &service;
    std::weak_ptr<bool> alive = m_alive;
    ImagePreparation::Callbacks callbacks;
    callbacks.on_progress = [this, alive, p, s](const std::string& text, bool log_it) {
        if (alive.expired()) {
            return;
        }
        s->progress = text;
        if (log_it && s->supervisor) {
            s->supervisor->logs().write_system(text);
        }
        notify(*p, *s);
    };
    callbacks.on_done = [this, alive, p, s, dirs](base::Result<image::PreparedInfo> result) {
        if (alive.expired()) {
            return;
        }
        // We run inside the preparation: destroy it after this callback.
        std::shared_ptr<ImagePreparation> finished(std::move(s->preparing));
        m_loop.post([finished] {});
        s->progress.clear();
        s->layer_live = true;  // the child may have made files even when it failed
        if (!s->desired_up || s->removing) {
            cleanup_image(*p, *s);
            notify(*p, *s);
            schedule_pump();
            return;
        }
        auto launched = [&]() -> base::Result<void> {
            image::PreparedInfo prepared = TRY(std::move(result));
            auto injected = config::injected_env(p->spec, s->spec, port_map(*p), "");
            ContainerInputs inputs;
            inputs.project = &p->spec;
            inputs.service = &s->spec;
            inputs.prepared = std::move(prepared);
            inputs.env = config::service_env(p->spec, s->spec, p->env, injected);
            inputs.notify_socket = s->supervisor->notify_socket();
            inputs.dirs = dirs;
            inputs.data_dir = m_data_dir;
            inputs.run_dir = m_run_dir;
            inputs.user_namespace = user_namespace_for(*s);
            ns::ContainerSpec spec = TRY(container_spec(inputs));
            TRY(write_container_spec(spec, dirs));
            s->supervisor->logs().write_system(
                fmt::format("image {} ready ({}); starting the container",
                            inputs.prepared.reference, inputs.prepared.image_digest));
            return base::ok();
        }();
        if (!launched) {
            fail_service(*p, *s, launched.error().to_string());
            cleanup_image(*p, *s);
            schedule_pump();
            return;
        }
        s->supervisor->start();
    };
    auto started =
        ImagePreparation::start(m_loop, service.spec.image, dirs.layer, std::move(callbacks));
    if (!started) {
        fail_service(project, service, started.error().to_string());
        return;
    }
    service.preparing = started.release_value();
    service.progress = fmt::format("preparing {}", service.spec.image);
    service.supervisor->logs().write_system(
        fmt::format("preparing the image {}", service.spec.image));
    notify(project, service);
}

// ---------------------------------------------------------------- build services

base::Result<void> ServiceManager::add_build_env(std::vector<std::string>& argv,
                                                 const Project& project,
                                                 const config::ServiceSpec& spec) const {
    if (spec.build->env.empty()) {
        return base::ok();
    }
    if (m_data_dir.empty()) {
        // No data dir (a foreground `up`): the values go on the command line
        // of the user's own foreground process tree.
        for (const auto& [key, value] : spec.build->env) {
            argv.insert(argv.end(), {"--env", key + "=" + value});
        }
        return base::ok();
    }
    // A 0600 file, not the command line, which every local user can read.
    // Its name changes with its content, so a change of build.env changes
    // the argv and so the service's fingerprint (it re-runs).
    std::string path = TRY(
        write_build_env(image_service_dirs(m_data_dir, project.name, spec.name), spec.build->env));
    argv.insert(argv.end(), {"--env-file", path});
    return base::ok();
}

void ServiceManager::start_provision(Project& project, Service& service) {
    service.waiting = false;
    service.provisioning.reset();  // one for an older config (kills it)
    const auto& build = *service.spec.build;
    std::vector<std::string> argv = run_provisioned_argv();
    argv[1] = "__provision";
    argv.insert(argv.end(), {"--project", project.name, "--service", service.spec.name, "--app-dir",
                             project.dir, "--builder", build.builder});
    for (const auto& buildpack : build.buildpacks) {
        argv.insert(argv.end(), {"--buildpack", buildpack});
    }
    if (auto added = add_build_env(argv, project, service.spec); !added) {
        fail_service(project, service, added.error().to_string());
        return;
    }
    const bool container = service.is_build_container();
    if (container) {
        argv.push_back("--container");
        if (!service.spec.process.empty()) {
            argv.insert(argv.end(), {"--process", service.spec.process});
        }
        if (!service.spec.command.empty()) {
            argv.push_back("--");
            for (const auto& arg :
                 service.spec.command.form == config::CommandLine::Form::Shell
                     ? std::vector<std::string>{"/bin/sh", "-c", service.spec.command.shell}
                     : service.spec.command.argv) {
                argv.push_back(arg);
            }
        }
    }
    Project* p = &project;
    Service* s = &service;
    std::weak_ptr<bool> alive = m_alive;
    // What the child said last: its result or its error.
    auto outcome = std::make_shared<std::optional<base::Result<void>>>();
    // Mode "container": the process it computed.
    auto process = std::make_shared<std::optional<base::Result<ProvisionedContainer>>>();
    auto last_text = std::make_shared<std::string>();
    auto on_line = [this, alive, p, s, outcome, last_text, process](const std::string& line) {
        if (alive.expired()) {
            return;
        }
        auto json = base::Json::parse(line);
        const base::Json* event = json ? json->find("event") : nullptr;
        if (!event || !event->is_string()) {
            *last_text = line;
            return;
        }
        auto text = [&](std::string_view key) {
            const base::Json* value = json->find(key);
            return value && value->is_string() ? value->as_string() : std::string();
        };
        const std::string& name = event->as_string();
        if (name == "progress") {
            s->progress = fmt::format("provisioning: {}: {}", text("phase"), text("message"));
            if (s->supervisor) {
                s->supervisor->logs().write_system(s->progress);
            }
            notify(*p, *s);
        } else if (name == "warning") {
            if (s->supervisor) {
                s->supervisor->logs().write_system("warning: " + text("message"));
            }
        } else if (name == "result") {
            *outcome = base::ok();
            if (const base::Json* container = json->find("container")) {
                *process = provisioned_container_from_json(*container);
            }
        } else if (name == "error") {
            *outcome = base::Result<void>(base::failed_precondition("{}", text("message")));
        }
    };
    auto on_done = [this, alive, p, s, outcome, last_text, process,
                    container](base::ExitStatus status) {
        if (alive.expired()) {
            return;
        }
        // We run inside the command: destroy it after this callback.
        std::shared_ptr<InternalCommand> finished(std::move(s->provisioning));
        m_loop.post([finished] {});
        s->progress.clear();
        if (!s->desired_up || s->removing) {
            notify(*p, *s);
            schedule_pump();
            return;
        }
        if (!outcome->has_value()) {
            *outcome = base::Result<void>(base::internal_error(
                "`locald __provision` ended ({}) without a result{}{}", status.to_string(),
                last_text->empty() ? "" : ": ", *last_text));
        }
        if (!**outcome) {
            fail_service(*p, *s, (*outcome)->error().message());
            schedule_pump();
            return;
        }
        if (container) {
            auto written = [&]() -> base::Result<void> {
                if (!process->has_value()) {
                    return base::internal_error(
                        "`locald __provision --container` gave no process to run");
                }
                ProvisionedContainer run = TRY(std::move(**process));
                auto injected = config::injected_env(p->spec, s->spec, port_map(*p), "");
                ContainerInputs inputs;
                inputs.project = &p->spec;
                inputs.service = &s->spec;
                inputs.env = config::service_env(p->spec, s->spec, p->env, injected);
                inputs.notify_socket = s->supervisor->notify_socket();
                inputs.dirs = image_service_dirs(m_data_dir, p->name, s->spec.name);
                inputs.data_dir = m_data_dir;
                inputs.run_dir = m_run_dir;
                inputs.user_namespace = user_namespace_for(*s);
                ns::ContainerSpec spec = TRY(build_container_spec(inputs, run));
                TRY(write_container_spec(spec, inputs.dirs));
                s->supervisor->logs().write_system(
                    fmt::format("provisioned; starting the container (rootfs {})", run.rootfs));
                return base::ok();
            }();
            if (!written) {
                fail_service(*p, *s, written.error().to_string());
                schedule_pump();
                return;
            }
        }
        s->supervisor->start();  // __run-provisioned finds the dump current
    };
    auto started = InternalCommand::start(m_loop, std::move(argv), on_line, on_done);
    if (!started) {
        fail_service(project, service, started.error().to_string());
        return;
    }
    service.provisioning = started.release_value();
    service.progress = fmt::format("provisioning with {}", build.builder);
    service.supervisor->logs().write_system(service.progress);
    notify(project, service);
}

std::string ServiceManager::user_namespace_for(Service& service) {
    // One held user namespace for all image services (podman's pause
    // process): no setuid helper per container start. Off with
    // LOCALD_USERNS_HOLDER=0; a holder that cannot start leaves the service
    // to map a fresh namespace (the same ids, only slower), said in its log.
    const char* setting = std::getenv("LOCALD_USERNS_HOLDER");
    if (setting && std::string_view(setting) == "0") {
        return {};
    }
    if (!m_userns_holder) {
        m_userns_holder = std::make_unique<UsernsHolder>(m_loop, holder_argv());
    }
    std::vector<std::string> warnings;
    auto path = m_userns_holder->path(&warnings);
    for (const auto& warning : warnings) {
        service.supervisor->logs().write_system("warning: " + warning);
    }
    if (!path) {
        service.supervisor->logs().write_system(fmt::format(
            "warning: {}; this container maps its own user namespace", path.error().to_string()));
        return {};
    }
    return path.release_value();
}

void ServiceManager::cancel_image(Project& project, Service& service) {
    if (!service.preparing) {
        return;
    }
    service.preparing.reset();  // kills the child and its helpers
    service.progress.clear();
    service.layer_live = true;
    cleanup_image(project, service);
}

void ServiceManager::cleanup_image(Project& project, Service& service) {
    if (!service.layer_live || service.cleaning || m_data_dir.empty()) {
        return;
    }
    service.layer_live = false;
    ImageServiceDirs dirs = image_service_dirs(m_data_dir, project.name, service.spec.name);
    Project* p = &project;
    Service* s = &service;
    std::weak_ptr<bool> alive = m_alive;
    auto started = start_image_cleanup(m_loop, {dirs.dir}, [this, alive, p, s](std::string error) {
        if (alive.expired()) {
            return;
        }
        std::shared_ptr<InternalCommand> finished(std::move(s->cleaning));
        m_loop.post([finished] {});
        if (!error.empty()) {
            LOG_WARN("{}:{}: removing the writable layer: {}", p->name, s->spec.name, error);
            if (s->supervisor) {
                s->supervisor->logs().write_system("removing the writable layer failed: " + error);
            }
        }
        notify(*p, *s);
        schedule_pump();
    });
    if (!started) {
        LOG_WARN("{}:{}: removing the writable layer: {}", project.name, service.spec.name,
                 started.error().to_string());
        return;
    }
    service.cleaning = started.release_value();
}

void ServiceManager::on_image_status(Project& project, Service& service) {
    if (!service.supervisor || service.preparing) {
        return;
    }
    ServiceState state = service.supervisor->status().state;
    if (state != ServiceState::Stopped && state != ServiceState::Exited &&
        state != ServiceState::Failed) {
        return;
    }
    if (service.restart_after_down && (!service.desired_up || service.removing)) {
        service.restart_after_down = false;  // stopped or removed meanwhile
    }
    if (service.restart_after_down) {
        // A config change: prepare afresh (the child removes the old layer
        // first) and start again.
        service.restart_after_down = false;
        service.layer_live = false;
        request_start(project, service);
        return;
    }
    cleanup_image(project, service);
}

// ---------------------------------------------------------------- queries

ServiceView ServiceManager::make_view(const Project& project, const Service& service) const {
    ServiceView view;
    view.project = project.name;
    view.name = service.spec.name;
    view.kind = kind_name(service.spec);
    auto ports = port_map(project);
    if (auto it = ports.find(service.spec.name); it != ports.end()) {
        view.port = it->second;
    }
    if (service.supervisor) {
        const host::ServiceStatus& status = service.supervisor->status();
        view.state = status.state;
        view.pid = status.pid;
        view.restarts = status.restarts;
        if (status.last_exit) {
            view.exit_code = status.last_exit->exit_code;
        }
        view.started_at = status.started_at;
        view.ready_at = status.ready_at;
        view.reason = status.reason;
    }
    if (service.preparing || service.provisioning) {
        // Pulling/unpacking in the `__prepare-image` child (or building in
        // `__provision`): starting, with its latest progress line as the
        // reason `up` shows.
        view.state = ServiceState::Starting;
        view.pid = 0;
        view.reason = service.progress;
        view.preparing = true;
    } else if (service.cleaning && view.state == ServiceState::Stopped) {
        view.state = ServiceState::Stopping;  // the writable layer is being removed
        view.reason = "removing the writable layer";
    }
    if (!service.failure.empty()) {
        view.state = ServiceState::Failed;
        view.reason = service.failure;
    } else if (service.waiting) {
        view.state = ServiceState::Pending;
        view.waiting = true;
        std::vector<std::string> deps;
        for (const auto& d : service.spec.depends_on) {
            deps.push_back(fmt::format("{} ({})", d.service, config::to_string(d.condition)));
        }
        view.reason = deps.empty() ? "" : fmt::format("waiting for {}", fmt::join(deps, ", "));
    }
    return view;
}

void ServiceManager::notify(const Project& project, const Service& service) {
    if (m_listeners.empty()) {
        return;
    }
    ServiceView view = make_view(project, service);
    auto listeners = m_listeners;
    for (auto& [id, listener] : listeners) {
        listener(view);
    }
}

std::vector<ServiceView> ServiceManager::views() const {
    std::vector<ServiceView> out;
    for (const auto& project : m_projects) {
        for (const auto& service : project->services) {
            if (!service->removing) {
                out.push_back(make_view(*project, *service));
            }
        }
    }
    return out;
}

std::optional<ServiceView> ServiceManager::view(const ServiceKey& key) const {
    const Project* project = find_project(key.project);
    if (project == nullptr) {
        return std::nullopt;
    }
    for (const auto& service : project->services) {
        if (service->spec.name == key.service && !service->removing) {
            return make_view(*project, *service);
        }
    }
    return std::nullopt;
}

std::vector<std::string> ServiceManager::dependencies(const ServiceKey& key) const {
    std::vector<std::string> out;
    if (const Project* project = find_project(key.project)) {
        for (const auto& service : project->services) {
            if (service->spec.name == key.service && !service->removing) {
                for (const auto& dependency : service->spec.depends_on) {
                    out.push_back(dependency.service);
                }
            }
        }
    }
    return out;
}

std::vector<ServiceKey> ServiceManager::keys() const {
    std::vector<ServiceKey> out;
    for (const auto& project : m_projects) {
        for (const auto& service : project->services) {
            if (!service->removing) {
                out.push_back({project->name, service->spec.name});
            }
        }
    }
    return out;
}

host::Supervisor* ServiceManager::supervisor(const ServiceKey& key) {
    Project* project = find_project(key.project);
    if (project == nullptr) {
        return nullptr;
    }
    for (auto& service : project->services) {
        if (service->spec.name == key.service && !service->removing) {
            return service->supervisor.get();
        }
    }
    return nullptr;
}

base::Result<ServiceManager::RunContext> ServiceManager::run_context(const ServiceKey& key) {
    Project* project = find_project(key.project);
    Service* service = find_service(key);
    if (project == nullptr || service == nullptr) {
        return base::not_found("no service `{}` is loaded", key.qualified());
    }
    RunContext context;
    auto injected = config::injected_env(
        project->spec, service->spec, port_map(*project),
        service->supervisor ? service->supervisor->notify_socket() : std::string());
    context.env = config::service_env(project->spec, service->spec, project->env, injected);
    context.workdir = service->spec.workdir.empty() ? project->dir : service->spec.workdir;
    context.argv = service->spec.command.to_argv();
    context.project_dir = project->dir;
    context.image = service->spec.kind == config::ServiceKind::Image;
    return context;
}

uint64_t ServiceManager::add_listener(Listener listener) {
    uint64_t id = m_next_listener++;
    m_listeners.emplace_back(id, std::move(listener));
    return id;
}

void ServiceManager::remove_listener(uint64_t id) {
    std::erase_if(m_listeners, [id](const auto& entry) { return entry.first == id; });
}

}  // namespace locald::daemon
