#include "config/render.h"

#include <fmt/ranges.h>

#include "config/values.h"

namespace locald::config {

namespace {

using base::Json;

Json command_json(const CommandLine& command) {
    switch (command.form) {
        case CommandLine::Form::None:
            return nullptr;
        case CommandLine::Form::Shell:
            return command.shell;
        case CommandLine::Form::Exec: {
            Json array = Json::array();
            for (const auto& arg : command.argv) {
                array.push_back(arg);
            }
            return array;
        }
    }
    return nullptr;
}

Json port_json(const PortSpec& port) {
    switch (port.mode) {
        case PortSpec::Mode::Auto:
            return "auto";
        case PortSpec::Mode::Pinned:
            return static_cast<int64_t>(port.number);
        case PortSpec::Mode::None:
            return nullptr;
    }
    return nullptr;
}

Json strings_json(const std::vector<std::string>& items) {
    Json array = Json::array();
    for (const auto& item : items) {
        array.push_back(item);
    }
    return array;
}

Json health_json(const std::optional<HealthCheck>& check) {
    if (!check) {
        return nullptr;
    }
    Json out = Json::object();
    out.set("kind", to_string(check->kind));
    switch (check->kind) {
        case HealthCheck::Kind::Http:
            out.set("path", check->http_path);
            break;
        case HealthCheck::Kind::Exec:
            out.set("command", command_json(check->command));
            break;
        case HealthCheck::Kind::Log:
            out.set("pattern", check->pattern);
            break;
        case HealthCheck::Kind::Tcp:
        case HealthCheck::Kind::Notify:
            break;
    }
    out.set("interval_ms", check->interval.count());
    out.set("timeout_ms", check->timeout.count());
    out.set("retries", check->retries);
    out.set("start_period_ms", check->start_period.count());
    return out;
}

}  // namespace

Json to_json(const ServiceSpec& service) {
    Json out = Json::object();
    out.set("kind", to_string(service.kind));
    out.set("command", command_json(service.command));
    out.set("workdir", service.workdir.empty() ? Json(nullptr) : Json(service.workdir));
    Json env = Json::object();
    for (const auto& entry : service.env) {
        env.set(entry.key, entry.value);
    }
    out.set("env", std::move(env));
    out.set("env_files", strings_json(service.env_files));
    Json depends_on = Json::object();
    for (const auto& dependency : service.depends_on) {
        depends_on.set(dependency.service, to_string(dependency.condition));
    }
    out.set("depends_on", std::move(depends_on));
    out.set("port", port_json(service.port));
    out.set("health_check", health_json(service.health_check));
    out.set("restart", to_string(service.restart));
    out.set("backoff", Json::object({{"initial_ms", service.backoff.initial.count()},
                                     {"max_ms", service.backoff.max.count()}}));
    out.set("min_uptime_ms", service.min_uptime.count());
    out.set("max_restarts", service.max_restarts);
    out.set("stop_signal", service.stop_signal.name);
    out.set("stop_timeout_ms", service.stop_timeout.count());
    out.set("replicas", service.replicas);

    bool in_container = !service.runs_on_host();
    out.set("image", service.kind == ServiceKind::Image ? Json(service.image) : Json(nullptr));
    out.set("entrypoint", command_json(service.entrypoint));
    if (in_container) {
        const ContainerSpec& container = service.container;
        out.set("user", container.user.empty() ? Json(nullptr) : Json(container.user));
        Json volumes = Json::array();
        for (const auto& volume : container.volumes) {
            volumes.push_back(
                Json::object({{"type", volume.kind == VolumeSpec::Kind::Bind ? "bind" : "named"},
                              {"source", volume.source},
                              {"target", volume.target},
                              {"read_only", volume.read_only}}));
        }
        out.set("volumes", std::move(volumes));
        out.set("network", to_string(container.network));
        const Resources& resources = container.resources;
        out.set(
            "resources",
            Json::object({{"memory_bytes",
                           resources.memory_bytes ? Json(*resources.memory_bytes) : Json(nullptr)},
                          {"cpus", resources.cpus ? Json(*resources.cpus) : Json(nullptr)},
                          {"pids", resources.pids ? Json(*resources.pids) : Json(nullptr)}}));
        out.set("read_only", container.read_only);
    } else {
        out.set("user", nullptr);
        out.set("volumes", nullptr);
        out.set("network", nullptr);
        out.set("resources", nullptr);
        out.set("read_only", nullptr);
    }
    if (service.build) {
        Json env_json = Json::object();
        for (const auto& [key, value] : service.build->env) {
            env_json.set(key, value);
        }
        out.set("build", Json::object({{"builder", service.build->builder},
                                       {"buildpacks", strings_json(service.build->buildpacks)},
                                       {"env", std::move(env_json)},
                                       {"mode", to_string(service.build->mode)}}));
    } else {
        out.set("build", nullptr);
    }
    out.set("process", service.process.empty() ? Json(nullptr) : Json(service.process));
    out.set("source", service.location.to_string());
    return out;
}

Json to_json(const ProjectSpec& project) {
    Json services = Json::object();
    for (const auto& service : project.services) {
        services.set(service.name, to_json(service));
    }
    return Json::object({{"project", Json::object({{"name", project.name},
                                                   {"dir", project.dir},
                                                   {"files", strings_json(project.files)}})},
                         {"services", std::move(services)}});
}

std::string describe_origin(const EnvEntry& entry) {
    switch (entry.origin) {
        case EnvOrigin::Environment:
            return "environment";
        case EnvOrigin::Injected:
            return "injected by locald";
        default:
            return entry.location.to_string();
    }
}

namespace {

std::string command_text(const CommandLine& command) {
    if (command.form == CommandLine::Form::Shell) {
        return command.shell;
    }
    // An exec array, shown as JSON so the argument boundaries stay visible.
    return command_json(command).dump();
}

std::string port_text(const PortSpec& port) {
    switch (port.mode) {
        case PortSpec::Mode::Auto:
            return "auto (a free port, assigned at `up`)";
        case PortSpec::Mode::Pinned:
            return std::to_string(port.number);
        case PortSpec::Mode::None:
            return "none";
    }
    return "";
}

}  // namespace

std::string render_text(const ProjectSpec& project) {
    std::string out = fmt::format("project {}\n  dir:   {}\n", project.name, project.dir);
    for (const auto& file : project.files) {
        out += fmt::format("  file:  {}\n", file);
    }
    for (const auto& service : project.services) {
        out += fmt::format("\nservice {} ({}, {})\n", service.name, to_string(service.kind),
                           service.location.to_string());
        auto line = [&](std::string_view key, const std::string& value) {
            out += fmt::format("  {:<14}{}\n", fmt::format("{}:", key), value);
        };
        if (service.kind == ServiceKind::Image) {
            line("image", service.image);
        }
        if (service.build) {
            line("build",
                 fmt::format("builder {}, mode {}{}", service.build->builder,
                             to_string(service.build->mode),
                             service.build->buildpacks.empty()
                                 ? std::string()
                                 : fmt::format(", buildpacks {}",
                                               fmt::join(service.build->buildpacks, " "))));
        }
        if (!service.process.empty()) {
            line("process", service.process);
        }
        if (!service.entrypoint.empty()) {
            line("entrypoint", command_text(service.entrypoint));
        }
        if (!service.command.empty()) {
            line("command", command_text(service.command));
        }
        line("workdir", service.workdir.empty() ? "(the image's)" : service.workdir);
        line("port", port_text(service.port));
        if (!service.depends_on.empty()) {
            std::string deps;
            for (const auto& dependency : service.depends_on) {
                deps += fmt::format("{}{} ({})", deps.empty() ? "" : ", ", dependency.service,
                                    to_string(dependency.condition));
            }
            line("depends_on", deps);
        }
        if (const auto& check = service.health_check) {
            std::string probe(to_string(check->kind));
            if (check->kind == HealthCheck::Kind::Http) {
                probe += " " + check->http_path;
            } else if (check->kind == HealthCheck::Kind::Exec) {
                probe += " " + command_text(check->command);
            } else if (check->kind == HealthCheck::Kind::Log) {
                probe += fmt::format(" \"{}\"", check->pattern);
            }
            line("health_check",
                 fmt::format("{} every {}, timeout {}, {} retries, start period {}", probe,
                             format_duration(check->interval), format_duration(check->timeout),
                             check->retries, format_duration(check->start_period)));
        }
        line("restart",
             fmt::format("{} (backoff {}..{}, min uptime {}, max {} restarts)",
                         to_string(service.restart), format_duration(service.backoff.initial),
                         format_duration(service.backoff.max), format_duration(service.min_uptime),
                         service.max_restarts));
        line("stop", fmt::format("{}, then SIGKILL after {}", service.stop_signal.name,
                                 format_duration(service.stop_timeout)));
        if (service.replicas != 1) {
            line("replicas", std::to_string(service.replicas));
        }
        if (!service.runs_on_host()) {
            const ContainerSpec& container = service.container;
            if (!container.user.empty()) {
                line("user", container.user);
            }
            for (const auto& volume : container.volumes) {
                line("volume", fmt::format("{} {} -> {}{}",
                                           volume.kind == VolumeSpec::Kind::Bind ? "bind" : "named",
                                           volume.source, volume.target,
                                           volume.read_only ? " (read-only)" : ""));
            }
            line("network", std::string(to_string(container.network)));
            const Resources& resources = container.resources;
            if (resources.memory_bytes || resources.cpus || resources.pids) {
                std::string limits;
                if (resources.memory_bytes) {
                    limits += fmt::format("memory {} bytes", *resources.memory_bytes);
                }
                if (resources.cpus) {
                    limits += fmt::format("{}cpus {}", limits.empty() ? "" : ", ", *resources.cpus);
                }
                if (resources.pids) {
                    limits += fmt::format("{}pids {}", limits.empty() ? "" : ", ", *resources.pids);
                }
                line("resources", limits);
            }
            if (container.read_only) {
                line("read_only", "true");
            }
        }
        if (!service.env.empty()) {
            out += "  env:\n";
            for (const auto& entry : service.env) {
                out += fmt::format("    {}={}  # {}\n", entry.key, entry.value,
                                   describe_origin(entry));
            }
        }
    }
    return out;
}

std::string render_env(const std::vector<EnvEntry>& entries, bool explain) {
    std::string out;
    for (const auto& entry : entries) {
        out += fmt::format("{}={}", entry.key, entry.value);
        if (explain) {
            out += fmt::format("  # {}", describe_origin(entry));
        }
        out += '\n';
    }
    return out;
}

}  // namespace locald::config
