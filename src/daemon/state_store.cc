#include "daemon/state_store.h"

#include <cerrno>

#include "base/atomic_file.h"
#include "base/sys.h"

namespace locald::daemon {

base::Json to_json(const DaemonState& state) {
    base::Json projects = base::Json::object();
    for (const auto& [name, project] : state.projects) {
        base::Json env = base::Json::object();
        for (const auto& [key, value] : project.env) {
            env.set(key, value);
        }
        base::Json services = base::Json::object();
        for (const auto& [service_name, service] : project.services) {
            base::Json entry = base::Json::object({{"desired_up", service.desired_up}});
            entry.set("port", service.port ? base::Json(*service.port) : base::Json());
            if (service.run) {
                entry.set("run", base::Json::object(
                                     {{"pid", service.run->pid},
                                      {"start_time", static_cast<int64_t>(service.run->start_time)},
                                      {"notify_socket", service.run->notify_socket}}));
            }
            services.set(service_name, std::move(entry));
        }
        projects.set(name, base::Json::object({{"dir", project.dir},
                                               {"desired_up", project.desired_up},
                                               {"env", std::move(env)},
                                               {"services", std::move(services)}}));
    }
    return base::Json::object({{"version", 1},
                               {"daemon_pid", state.daemon_pid},
                               {"cgroup_parent", state.cgroup_parent},
                               {"projects", std::move(projects)}});
}

base::Result<DaemonState> state_from_json(const base::Json& json) {
    DaemonState state;
    if (!json.is_object()) {
        return base::data_loss("state: not a JSON object");
    }
    if (const auto* pid = json.find("daemon_pid"); pid && pid->is_int()) {
        state.daemon_pid = pid->as_int();
    }
    if (const auto* parent = json.find("cgroup_parent"); parent && parent->is_string()) {
        state.cgroup_parent = parent->as_string();
    }
    const base::Json* projects = json.find("projects");
    if (projects == nullptr || !projects->is_object()) {
        return state;
    }
    for (const auto& [name, entry] : projects->as_object()) {
        if (!entry.is_object()) {
            return base::data_loss("state: project `{}` is not an object", name);
        }
        ProjectRecord project;
        project.dir = TRY(entry.get_string("dir"));
        project.desired_up = TRY(entry.get_bool("desired_up"));
        if (const auto* env = entry.find("env"); env && env->is_object()) {
            for (const auto& [key, value] : env->as_object()) {
                if (value.is_string()) {
                    project.env[key] = value.as_string();
                }
            }
        }
        if (const auto* services = entry.find("services"); services && services->is_object()) {
            for (const auto& [service_name, s] : services->as_object()) {
                ServiceRecord record;
                if (const auto* d = s.find("desired_up"); d && d->is_bool()) {
                    record.desired_up = d->as_bool();
                }
                if (const auto* p = s.find("port");
                    p && p->is_int() && p->as_int() > 0 && p->as_int() < 65536) {
                    record.port = static_cast<uint16_t>(p->as_int());
                }
                if (const auto* run = s.find("run"); run && run->is_object()) {
                    RunRecord r;
                    if (const auto* v = run->find("pid"); v && v->is_int()) {
                        r.pid = v->as_int();
                    }
                    if (const auto* v = run->find("start_time"); v && v->is_int()) {
                        r.start_time = static_cast<uint64_t>(v->as_int());
                    }
                    if (const auto* v = run->find("notify_socket"); v && v->is_string()) {
                        r.notify_socket = v->as_string();
                    }
                    record.run = r;
                }
                project.services[service_name] = std::move(record);
            }
        }
        state.projects[name] = std::move(project);
    }
    return state;
}

base::Result<DaemonState> StateStore::load() const {
    auto text = base::read_file(m_path, 64u << 20);
    if (!text) {
        if (text.error().errno_value() == ENOENT) {
            return DaemonState{};
        }
        return text.release_error();
    }
    auto json = base::Json::parse(*text);
    if (!json) {
        return base::data_loss("parsing `{}`: {}", m_path, json.error().message());
    }
    return TRY(state_from_json(*json).context(fmt::format("reading `{}`", m_path)));
}

base::Result<void> StateStore::save(const DaemonState& state) const {
    return base::atomic_write_file(m_path, to_json(state).dump(true) + "\n", 0600)
        .context(fmt::format("saving `{}`", m_path));
}

}  // namespace locald::daemon
