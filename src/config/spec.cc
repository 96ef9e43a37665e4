#include "config/spec.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>

extern char** environ;

namespace locald::config {

std::string SourceLocation::to_string() const {
    if (line <= 0) {
        return file;
    }
    if (column <= 0) {
        return fmt::format("{}:{}", file, line);
    }
    return fmt::format("{}:{}:{}", file, line, column);
}

std::vector<std::string> CommandLine::to_argv() const {
    switch (form) {
        case Form::None:
            return {};
        case Form::Shell:
            return {"/bin/sh", "-c", shell};
        case Form::Exec:
            return argv;
    }
    return {};
}

std::string_view to_string(EnvOrigin origin) {
    switch (origin) {
        case EnvOrigin::Environment:
            return "environment";
        case EnvOrigin::DotEnv:
            return "dotenv";
        case EnvOrigin::ProjectEnv:
            return "project env";
        case EnvOrigin::EnvFile:
            return "env_file";
        case EnvOrigin::ServiceEnv:
            return "service env";
        case EnvOrigin::Injected:
            return "injected";
    }
    return "unknown";
}

std::string_view to_string(ServiceKind kind) {
    switch (kind) {
        case ServiceKind::Host:
            return "host";
        case ServiceKind::Image:
            return "image";
        case ServiceKind::Build:
            return "build";
    }
    return "unknown";
}

std::string_view to_string(DependencyCondition condition) {
    switch (condition) {
        case DependencyCondition::Started:
            return "started";
        case DependencyCondition::Healthy:
            return "healthy";
        case DependencyCondition::Completed:
            return "completed";
        case DependencyCondition::CompletedSuccessfully:
            return "completed_successfully";
    }
    return "unknown";
}

std::string_view to_string(HealthCheck::Kind kind) {
    switch (kind) {
        case HealthCheck::Kind::Http:
            return "http";
        case HealthCheck::Kind::Tcp:
            return "tcp";
        case HealthCheck::Kind::Exec:
            return "exec";
        case HealthCheck::Kind::Log:
            return "log";
        case HealthCheck::Kind::Notify:
            return "notify";
    }
    return "unknown";
}

std::string_view to_string(RestartPolicy policy) {
    switch (policy) {
        case RestartPolicy::No:
            return "no";
        case RestartPolicy::OnFailure:
            return "on-failure";
        case RestartPolicy::Always:
            return "always";
    }
    return "unknown";
}

std::string_view to_string(NetworkMode mode) {
    switch (mode) {
        case NetworkMode::Host:
            return "host";
        case NetworkMode::None:
            return "none";
    }
    return "unknown";
}

std::string_view to_string(BuildSpec::Mode mode) {
    switch (mode) {
        case BuildSpec::Mode::Container:
            return "container";
        case BuildSpec::Mode::Host:
            return "host";
    }
    return "unknown";
}

Environment current_environment() {
    Environment out;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        std::string_view text(*entry);
        size_t equals = text.find('=');
        if (equals == std::string_view::npos || equals == 0) {
            continue;
        }
        // First definition wins, as getenv() does.
        out.emplace(std::string(text.substr(0, equals)), std::string(text.substr(equals + 1)));
    }
    return out;
}

const ServiceSpec* ProjectSpec::find_service(std::string_view wanted) const {
    for (const auto& service : services) {
        if (service.name == wanted) {
            return &service;
        }
    }
    return nullptr;
}

namespace {

std::string port_variable(std::string_view service) {
    std::string out = "LOCALD_PORT_";
    for (char c : service) {
        out.push_back(c == '-' ? '_'
                               : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    }
    return out;
}

// PORT set by the service itself (its env_file or env) wins: the user asked
// for it there. A project-wide `.env`/`[env]` PORT does not.
bool sets_own_port(const ServiceSpec& service) {
    return std::any_of(service.env.begin(), service.env.end(), [](const auto& e) {
        return e.key == "PORT" &&
               (e.origin == EnvOrigin::EnvFile || e.origin == EnvOrigin::ServiceEnv);
    });
}

std::optional<std::uint16_t> port_of(const ServiceSpec& service,
                                     const std::map<std::string, std::uint16_t>& ports) {
    if (service.port.mode == PortSpec::Mode::None) {
        return std::nullopt;
    }
    if (auto it = ports.find(service.name); it != ports.end()) {
        return it->second;
    }
    if (service.port.mode == PortSpec::Mode::Pinned) {
        return service.port.number;
    }
    return std::nullopt;
}

}  // namespace

std::vector<EnvEntry> injected_env(const ProjectSpec& project, const ServiceSpec& service,
                                   const std::map<std::string, std::uint16_t>& ports,
                                   const std::string& notify_socket) {
    std::map<std::string, EnvEntry> out;
    auto add = [&](std::string key, std::string value) {
        out[key] = EnvEntry{key, std::move(value), EnvOrigin::Injected, {}};
    };
    if (auto port = port_of(service, ports); port && !sets_own_port(service)) {
        add("PORT", std::to_string(*port));
    }
    add("LOCALD_PROJECT", project.name);
    add("LOCALD_SERVICE", service.name);
    for (const auto& other : project.services) {
        if (auto port = port_of(other, ports)) {
            add(port_variable(other.name), std::to_string(*port));
        }
    }
    if (!notify_socket.empty()) {
        add("NOTIFY_SOCKET", notify_socket);
    }
    std::vector<EnvEntry> result;
    for (auto& [key, entry] : out) {
        result.push_back(std::move(entry));
    }
    return result;
}

std::vector<std::string> unassigned_port_keys(const ProjectSpec& project,
                                              const ServiceSpec& service,
                                              const std::map<std::string, std::uint16_t>& ports) {
    auto unassigned = [&](const ServiceSpec& s) {
        return s.port.mode == PortSpec::Mode::Auto && !ports.contains(s.name);
    };
    std::vector<std::string> keys;
    if (unassigned(service) && !sets_own_port(service)) {
        keys.push_back("PORT");
    }
    for (const auto& other : project.services) {
        if (unassigned(other)) {
            keys.push_back(port_variable(other.name));
        }
    }
    return keys;
}

std::vector<EnvEntry> service_env(const ProjectSpec& project, const ServiceSpec& service,
                                  const Environment& base_environment,
                                  const std::vector<EnvEntry>& injected) {
    (void)project;
    std::map<std::string, EnvEntry> layered;
    for (const auto& [key, value] : base_environment) {
        layered[key] = EnvEntry{key, value, EnvOrigin::Environment, {}};
    }
    for (const auto& entry : service.env) {
        layered[entry.key] = entry;
    }
    for (const auto& entry : injected) {
        layered[entry.key] = entry;
    }
    std::vector<EnvEntry> result;
    result.reserve(layered.size());
    for (auto& [key, entry] : layered) {
        result.push_back(std::move(entry));
    }
    return result;
}

std::vector<const ServiceSpec*> start_order(const ProjectSpec& project) {
    // Kahn's algorithm; among the ready services, the earliest defined first.
    size_t count = project.services.size();
    std::map<std::string_view, size_t> index;
    for (size_t i = 0; i < count; ++i) {
        index[project.services[i].name] = i;
    }
    std::vector<size_t> waiting(count, 0);
    std::vector<std::vector<size_t>> dependents(count);
    for (size_t i = 0; i < count; ++i) {
        for (const auto& dependency : project.services[i].depends_on) {
            auto it = index.find(dependency.service);
            if (it == index.end()) {
                continue;  // load_project rejects these; be total anyway
            }
            ++waiting[i];
            dependents[it->second].push_back(i);
        }
    }
    std::vector<const ServiceSpec*> order;
    std::vector<bool> done(count, false);
    while (order.size() < count) {
        size_t next = count;
        for (size_t i = 0; i < count; ++i) {
            if (!done[i] && waiting[i] == 0) {
                next = i;
                break;
            }
        }
        if (next == count) {
            break;  // a cycle: load_project rejects these
        }
        done[next] = true;
        order.push_back(&project.services[next]);
        for (size_t dependent : dependents[next]) {
            --waiting[dependent];
        }
    }
    return order;
}

}  // namespace locald::config
