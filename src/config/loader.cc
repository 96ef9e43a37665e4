// load_project: finds the project files, parses them, merges the Procfile into
// locald.toml, layers the environment and checks the dependency graph.
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "config/dotenv.h"
#include "config/internal/files.h"
#include "config/internal/toml_loader.h"
#include "config/procfile.h"
#include "config/spec.h"

namespace locald::config {

namespace {

// Last definition wins; the result is in key order.
std::vector<EnvEntry> collapse(const std::vector<EnvEntry>& layers) {
    std::map<std::string, const EnvEntry*> winners;
    for (const auto& entry : layers) {
        winners[entry.key] = &entry;
    }
    std::vector<EnvEntry> out;
    out.reserve(winners.size());
    for (const auto& [key, entry] : winners) {
        out.push_back(*entry);
    }
    return out;
}

void add_file(ProjectSpec& project, const std::string& path) {
    if (std::find(project.files.begin(), project.files.end(), path) == project.files.end()) {
        project.files.push_back(path);
    }
}

base::Result<void> check_dependencies(const ProjectSpec& project) {
    std::map<std::string_view, size_t> index;
    std::string names;
    for (size_t i = 0; i < project.services.size(); ++i) {
        index[project.services[i].name] = i;
        names += fmt::format("{}`{}`", names.empty() ? "" : ", ", project.services[i].name);
    }
    for (const auto& service : project.services) {
        for (const auto& dependency : service.depends_on) {
            auto it = index.find(dependency.service);
            if (it == index.end()) {
                return base::invalid_argument(
                    "{}: `{}` depends on unknown service `{}` (services: {})",
                    dependency.location.to_string(), service.name, dependency.service, names);
            }
            const ServiceSpec& target = project.services[it->second];
            if (dependency.condition == DependencyCondition::Healthy &&
                !target.health_check.has_value()) {
                return base::invalid_argument(
                    "{}: `{}` waits for `{}` to be healthy, but `{}` has no health_check",
                    dependency.location.to_string(), service.name, target.name, target.name);
            }
        }
    }
    // Depth-first search; a back edge closes a cycle, which is named in full.
    enum class Mark { New, Active, Done };
    std::vector<Mark> marks(project.services.size(), Mark::New);
    std::vector<size_t> stack;
    std::function<base::Result<void>(size_t)> visit = [&](size_t i) -> base::Result<void> {
        marks[i] = Mark::Active;
        stack.push_back(i);
        for (const auto& dependency : project.services[i].depends_on) {
            size_t next = index.at(dependency.service);
            if (marks[next] == Mark::Active) {
                auto start = std::find(stack.begin(), stack.end(), next);
                std::string cycle;
                for (auto it = start; it != stack.end(); ++it) {
                    cycle += fmt::format("{} -> ", project.services[*it].name);
                }
                cycle += project.services[next].name;
                return base::invalid_argument("{}: dependency cycle: {}",
                                              dependency.location.to_string(), cycle);
            }
            if (marks[next] == Mark::New) {
                TRY(visit(next));
            }
        }
        stack.pop_back();
        marks[i] = Mark::Done;
        return base::ok();
    };
    for (size_t i = 0; i < project.services.size(); ++i) {
        if (marks[i] == Mark::New) {
            TRY(visit(i));
        }
    }
    return base::ok();
}

base::Result<void> check_ports(const ProjectSpec& project,
                               const std::map<std::string, SourceLocation>& port_locations) {
    std::map<std::uint16_t, const ServiceSpec*> pinned;
    for (const auto& service : project.services) {
        if (service.port.mode != PortSpec::Mode::Pinned) {
            continue;
        }
        auto [it, inserted] = pinned.emplace(service.port.number, &service);
        if (!inserted) {
            auto where = port_locations.find(service.name);
            auto first = port_locations.find(it->second->name);
            return base::invalid_argument(
                "{}: port {} is pinned by both `{}` ({}) and `{}`",
                where != port_locations.end() ? where->second.to_string()
                                              : service.location.to_string(),
                service.port.number, it->second->name,
                first != port_locations.end() ? first->second.to_string()
                                              : it->second->location.to_string(),
                service.name);
        }
    }
    return base::ok();
}

}  // namespace

base::Result<ProjectSpec> load_project(const std::string& dir, const Environment& environment) {
    std::unique_ptr<char, decltype(&::free)> real(::realpath(dir.c_str(), nullptr), &::free);
    if (!real) {
        return base::errno_error("opening project directory `{}`", dir);
    }
    struct stat st {};
    if (::stat(real.get(), &st) != 0) {
        return base::errno_error("opening project directory `{}`", dir);
    }
    if (!S_ISDIR(st.st_mode)) {
        return base::invalid_argument("opening project directory `{}`: not a directory", dir);
    }
    ProjectSpec project;
    project.dir = real.get();

    std::string toml_path = internal::resolve_path(project.dir, "locald.toml");
    std::string procfile_path = internal::resolve_path(project.dir, "Procfile");
    bool has_toml = internal::exists(toml_path);
    bool has_procfile = internal::exists(procfile_path);
    if (!has_toml && !has_procfile) {
        return base::not_found("no project in `{}`: looked for `locald.toml` and `Procfile` there",
                               project.dir);
    }

    internal::TomlProject toml;
    if (has_toml) {
        std::string text = TRY(internal::read_text_file(toml_path));
        toml = TRY(internal::parse_locald_toml(text, toml_path, project.dir));
        add_file(project, toml_path);
    }
    std::vector<ProcfileEntry> procfile;
    if (has_procfile) {
        std::string text = TRY(internal::read_text_file(procfile_path));
        procfile = TRY(parse_procfile(text, procfile_path));
        add_file(project, procfile_path);
    }

    // Project-wide layers: .env < .env.local < [env].
    std::vector<EnvEntry> project_layers;
    for (const char* name : {".env", ".env.local"}) {
        std::string path = internal::resolve_path(project.dir, name);
        if (!internal::exists(path)) {
            continue;
        }
        std::string text = TRY(internal::read_text_file(path));
        auto entries = TRY(parse_dotenv(text, path, environment, EnvOrigin::DotEnv));
        project_layers.insert(project_layers.end(), entries.begin(), entries.end());
        add_file(project, path);
    }
    project_layers.insert(project_layers.end(), toml.env.begin(), toml.env.end());
    project.env = collapse(project_layers);

    project.name = toml.name.value_or(internal::base_name(project.dir));
    if (project.name.empty()) {
        project.name = "root";  // the project dir is `/`
    }

    std::map<std::string, SourceLocation> port_locations;
    for (auto& service : toml.services) {
        // Service layers: the project's < env_file… < env.
        std::vector<EnvEntry> layers = project_layers;
        for (size_t i = 0; i < service.spec.env_files.size(); ++i) {
            const std::string& path = service.spec.env_files[i];
            auto text = internal::read_text_file(path);
            if (!text) {
                return base::Error(text.error().kind(),
                                   fmt::format("{}: env_file of `{}`: {}",
                                               service.env_file_locations[i].to_string(),
                                               service.spec.name, text.error().to_string()));
            }
            auto entries = TRY(parse_dotenv(text.value(), path, environment, EnvOrigin::EnvFile));
            layers.insert(layers.end(), entries.begin(), entries.end());
            add_file(project, path);
        }
        layers.insert(layers.end(), service.env_table.begin(), service.env_table.end());
        service.spec.env = collapse(layers);
        if (service.port_location.known()) {
            port_locations[service.spec.name] = service.port_location;
        }
        project.services.push_back(std::move(service.spec));
    }
    // A Procfile beside locald.toml adds the processes the toml does not define.
    for (const auto& entry : procfile) {
        if (project.find_service(entry.name) != nullptr) {
            continue;
        }
        ServiceSpec service;
        service.name = entry.name;
        service.kind = ServiceKind::Host;
        service.from_procfile = true;
        service.location = SourceLocation{procfile_path, entry.line, 0};
        service.command.form = CommandLine::Form::Shell;
        service.command.shell = entry.command;
        service.workdir = project.dir;
        service.env = project.env;
        service.port.mode = entry.name == "web" ? PortSpec::Mode::Auto : PortSpec::Mode::None;
        project.services.push_back(std::move(service));
    }

    TRY(check_dependencies(project));
    TRY(check_ports(project, port_locations));
    return project;
}

base::Result<ProjectSpec> load_project(const std::string& dir) {
    return load_project(dir, current_environment());
}

}  // namespace locald::config
