#include "config/internal/toml_loader.h"

#include <toml++/toml.h>
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <regex>
#include <set>

#include "base/toml_guard.h"
#include "config/internal/files.h"
#include "config/values.h"

namespace locald::config::internal {

namespace {

std::string_view type_name(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a float";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::table:
            return "a table";
        case toml::node_type::date:
            return "a date";
        case toml::node_type::time:
            return "a time";
        case toml::node_type::date_time:
            return "a date-time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

// Edit distance, for "did you mean" on unknown keys.
size_t distance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string join(const std::vector<std::string_view>& words) {
    std::string out;
    for (auto word : words) {
        if (!out.empty()) {
            out += ", ";
        }
        out += word;
    }
    return out;
}

const std::vector<std::string_view> kTopKeys = {"project", "env", "service", "services"};
const std::vector<std::string_view> kProjectKeys = {"name"};
const std::vector<std::string_view> kServiceKeys = {
    "command",     "entrypoint",   "workdir",   "env",     "env_file",   "port",
    "depends_on",  "health_check", "restart",   "backoff", "min_uptime", "max_restarts",
    "stop_signal", "stop_timeout", "replicas",  "image",   "user",       "volumes",
    "network",     "resources",    "read_only", "build",   "process"};
const std::vector<std::string_view> kHealthKeys = {
    "http", "tcp", "exec", "log", "notify", "interval", "timeout", "retries", "start_period"};
const std::vector<std::string_view> kBackoffKeys = {"initial", "max"};
const std::vector<std::string_view> kResourceKeys = {"memory", "cpus", "pids"};
const std::vector<std::string_view> kBuildKeys = {"builder", "buildpacks", "env", "mode"};
// Keys that configure a container; an error on a service that runs on the host.
const std::vector<std::string_view> kContainerKeys = {"user", "volumes", "network", "resources",
                                                      "read_only"};

class Reader {
public:
    Reader(const std::string& file, const std::string& project_dir)
        : m_file(file), m_project_dir(project_dir) {}

    base::Result<TomlProject> run(std::string_view text) {
        toml::table root;
        if (size_t line = base::toml_line_nested_too_deep(text); line != 0) {
            return base::invalid_argument(
                "{}:{}: invalid TOML: more than {} `.` outside strings on one line (keys nested "
                "that deep are refused)",
                m_file, line, base::kTomlMaxDotsPerLine);
        }
        try {
            root = toml::parse(text, m_file);
        } catch (const toml::parse_error& error) {
            const auto& where = error.source().begin;
            return base::invalid_argument("{}:{}:{}: invalid TOML: {}", m_file, where.line,
                                          where.column, error.description());
        } catch (const std::exception& error) {
            return base::invalid_argument("{}: invalid TOML: {}", m_file, error.what());
        }
        TomlProject project;
        const toml::key* services_key = nullptr;
        for (const auto& [key_ptr, node_ptr] : in_file_order(root)) {
            const toml::key& key = *key_ptr;
            const toml::node& node = *node_ptr;
            TRY(check_key(key, kTopKeys, "at the top level"));
            if (key.str() == "project") {
                const toml::table* table = TRY(expect_table(node, "[project]"));
                for (const auto& [project_key_ptr, value_ptr] : in_file_order(*table)) {
                    const toml::key& project_key = *project_key_ptr;
                    const toml::node& value = *value_ptr;
                    TRY(check_key(project_key, kProjectKeys, "in [project]"));
                    std::string name = TRY(expect_string(value, "project.name"));
                    if (name.empty() || name.find_first_of("/\n\t ") != std::string::npos ||
                        name == "." || name == "..") {
                        return fail(value,
                                    "`project.name`: expected a non-empty name without "
                                    "`/` or whitespace, found `{}`",
                                    name);
                    }
                    project.name = name;
                }
            } else if (key.str() == "env") {
                const toml::table* table = TRY(expect_table(node, "[env]"));
                project.env = TRY(read_env_table(*table, "env", EnvOrigin::ProjectEnv));
            } else {
                if (services_key != nullptr) {
                    return fail(key,
                                "`[{}]` and `[{}]` both define services; use one spelling in a "
                                "file (`[service.NAME]` is canonical)",
                                key.str(), services_key->str());
                }
                services_key = &key;
                const toml::table* table = TRY(expect_table(node, fmt::format("[{}]", key.str())));
                for (const auto& [name_ptr, service_node_ptr] : in_file_order(*table)) {
                    const toml::key& name = *name_ptr;
                    const toml::node& service_node = *service_node_ptr;
                    project.services.push_back(TRY(read_service(key.str(), name, service_node)));
                }
            }
        }
        // toml++ keeps tables sorted by key; services run in the order written.
        std::stable_sort(project.services.begin(), project.services.end(),
                         [](const TomlService& a, const TomlService& b) {
                             const auto& la = a.spec.location;
                             const auto& lb = b.spec.location;
                             return std::tie(la.line, la.column) < std::tie(lb.line, lb.column);
                         });
        return project;
    }

private:
    SourceLocation location(const toml::source_region& region) const {
        return SourceLocation{m_file, static_cast<int>(region.begin.line),
                              static_cast<int>(region.begin.column)};
    }
    SourceLocation location(const toml::node& node) const { return location(node.source()); }
    SourceLocation location(const toml::key& key) const { return location(key.source()); }

    template <typename Where, typename... Args>
    base::Error fail(const Where& where, fmt::format_string<Args...> format, Args&&... args) const {
        return base::invalid_argument("{}: {}", location(where).to_string(),
                                      fmt::format(format, std::forward<Args>(args)...));
    }

    // toml++ tables iterate in key order; errors and definitions follow the file.
    static std::vector<std::pair<const toml::key*, const toml::node*>> in_file_order(
        const toml::table& table) {
        std::vector<std::pair<const toml::key*, const toml::node*>> members;
        for (auto&& [key, value] : table) {
            members.emplace_back(&key, &value);
        }
        std::stable_sort(members.begin(), members.end(), [](const auto& a, const auto& b) {
            auto pa = a.first->source().begin;
            auto pb = b.first->source().begin;
            return std::tie(pa.line, pa.column) < std::tie(pb.line, pb.column);
        });
        return members;
    }

    base::Result<void> check_key(const toml::key& key, const std::vector<std::string_view>& allowed,
                                 std::string_view where) const {
        if (std::find(allowed.begin(), allowed.end(), key.str()) != allowed.end()) {
            return base::ok();
        }
        std::string hint;
        size_t best = 3;
        for (auto candidate : allowed) {
            size_t d = distance(key.str(), candidate);
            if (d < best) {
                best = d;
                hint = fmt::format(" (did you mean `{}`?)", candidate);
            }
        }
        return fail(key, "unknown key `{}` {}{}; allowed: {}", key.str(), where, hint,
                    join(allowed));
    }

    base::Result<const toml::table*> expect_table(const toml::node& node,
                                                  std::string_view what) const {
        if (const toml::table* table = node.as_table()) {
            return table;
        }
        return fail(node, "`{}`: expected a table, found {}", what, type_name(node));
    }

    base::Result<std::string> expect_string(const toml::node& node, std::string_view what) const {
        if (const auto* value = node.as_string()) {
            if (value->get().find('\0') != std::string::npos) {
                return fail(node, "`{}`: the string contains a NUL byte", what);
            }
            return value->get();
        }
        return fail(node, "`{}`: expected a string, found {}", what, type_name(node));
    }

    base::Result<std::string> expect_nonempty_string(const toml::node& node,
                                                     std::string_view what) const {
        std::string value = TRY(expect_string(node, what));
        if (value.empty()) {
            return fail(node, "`{}`: expected a non-empty string", what);
        }
        return value;
    }

    base::Result<bool> expect_bool(const toml::node& node, std::string_view what) const {
        if (const auto* value = node.as_boolean()) {
            return value->get();
        }
        return fail(node, "`{}`: expected a boolean (true or false), found {}", what,
                    type_name(node));
    }

    base::Result<std::int64_t> expect_integer(const toml::node& node, std::string_view what,
                                              std::int64_t min, std::int64_t max) const {
        const auto* value = node.as_integer();
        if (value == nullptr) {
            return fail(node, "`{}`: expected an integer, found {}", what, type_name(node));
        }
        if (value->get() < min || value->get() > max) {
            if (max == std::numeric_limits<std::int64_t>::max()) {
                return fail(node, "`{}`: expected an integer of at least {}, found {}", what, min,
                            value->get());
            }
            return fail(node, "`{}`: expected an integer from {} to {}, found {}", what, min, max,
                        value->get());
        }
        return value->get();
    }

    base::Result<std::vector<std::string>> expect_string_array(const toml::node& node,
                                                               std::string_view what) const {
        const toml::array* array = node.as_array();
        if (array == nullptr) {
            return fail(node, "`{}`: expected an array of strings, found {}", what,
                        type_name(node));
        }
        std::vector<std::string> out;
        for (size_t i = 0; i < array->size(); ++i) {
            out.push_back(TRY(expect_string((*array)[i], fmt::format("{}[{}]", what, i))));
        }
        return out;
    }

    base::Result<Duration> expect_duration(const toml::node& node, std::string_view what) const {
        const auto* value = node.as_string();
        if (value == nullptr) {
            return fail(node,
                        "`{}`: expected a duration string with a unit (`500ms`, `10s`, "
                        "`2m`), found {}",
                        what, type_name(node));
        }
        auto duration = parse_duration(value->get());
        if (!duration) {
            return fail(node, "`{}`: {}", what, duration.error().message());
        }
        return duration.value();
    }

    // A command: a string (→ /bin/sh -c) or a non-empty array of strings (exec'd).
    base::Result<CommandLine> expect_command(const toml::node& node, std::string_view what) const {
        CommandLine command;
        if (node.is_string()) {
            command.form = CommandLine::Form::Shell;
            command.shell = TRY(expect_string(node, what));
            if (command.shell.find_first_not_of(" \t\n") == std::string::npos) {
                return fail(node, "`{}`: expected a non-empty command", what);
            }
            return command;
        }
        if (node.is_array()) {
            command.form = CommandLine::Form::Exec;
            command.argv = TRY(expect_string_array(node, what));
            if (command.argv.empty() || command.argv[0].empty()) {
                return fail(node,
                            "`{}`: expected a non-empty array whose first element is the "
                            "program",
                            what);
            }
            return command;
        }
        return fail(node,
                    "`{}`: expected a string (run with /bin/sh -c) or an array of strings "
                    "(exec'd directly), found {}",
                    what, type_name(node));
    }

    base::Result<std::vector<EnvEntry>> read_env_table(const toml::table& table,
                                                       std::string_view what,
                                                       EnvOrigin origin) const {
        std::vector<EnvEntry> entries;
        for (const auto& [key_ptr, node_ptr] : in_file_order(table)) {
            const toml::key& key = *key_ptr;
            const toml::node& node = *node_ptr;
            if (!is_valid_env_key(key.str())) {
                return fail(key,
                            "`{}`: invalid variable name `{}` (expected [A-Za-z_][A-Za-z0-9_.-]*)",
                            what, key.str());
            }
            std::string path = fmt::format("{}.{}", what, key.str());
            std::string value;
            if (node.is_string()) {
                value = TRY(expect_string(node, path));
            } else if (const auto* integer = node.as_integer()) {
                value = std::to_string(integer->get());
            } else if (const auto* boolean = node.as_boolean()) {
                value = boolean->get() ? "true" : "false";
            } else {
                return fail(node, "`{}`: expected a string (or an integer or boolean), found {}",
                            path, type_name(node));
            }
            entries.push_back(
                EnvEntry{std::string(key.str()), std::move(value), origin, location(key)});
        }
        std::sort(entries.begin(), entries.end(), [](const EnvEntry& a, const EnvEntry& b) {
            return std::tie(a.location.line, a.location.column) <
                   std::tie(b.location.line, b.location.column);
        });
        return entries;
    }

    base::Result<TomlService> read_service(std::string_view section, const toml::key& name,
                                           const toml::node& node) {
        std::string prefix = fmt::format("{}.{}", section, name.str());
        if (!is_valid_service_name(name.str())) {
            return fail(name, "invalid service name `{}` (expected [A-Za-z0-9_-]+)", name.str());
        }
        const toml::table* table = TRY(expect_table(node, prefix));
        auto members = in_file_order(*table);
        // Unknown keys first: a typo is the likeliest mistake and explains
        // whatever else looks wrong.
        std::string where = fmt::format("in [{}]", prefix);
        for (const auto& [key, value] : members) {
            TRY(check_key(*key, kServiceKeys, where));
        }

        TomlService out;
        ServiceSpec& spec = out.spec;
        spec.name = std::string(name.str());
        // An explicit `[service.web]` header has its own position; a dotted or
        // inline definition is located at its name.
        spec.location = table->source().begin.line > 0 ? location(*table) : location(name);

        // Each value on its own, in file order, so the first bad one in the
        // file is the one reported.
        const toml::node* workdir_node = nullptr;
        std::string workdir;
        for (const auto& [key, value_ptr] : members) {
            const toml::node& value = *value_ptr;
            std::string_view k = key->str();
            std::string path = fmt::format("{}.{}", prefix, k);
            if (k == "command") {
                spec.command = TRY(expect_command(value, path));
            } else if (k == "entrypoint") {
                spec.entrypoint = TRY(expect_command(value, path));
            } else if (k == "image") {
                spec.image = TRY(expect_nonempty_string(value, path));
                if (spec.image.find_first_of(" \t\n") != std::string::npos) {
                    return fail(value, "`{}`: an image reference has no whitespace, found `{}`",
                                path, spec.image);
                }
            } else if (k == "build") {
                spec.build = TRY(read_build(value, path));
            } else if (k == "process") {
                spec.process = TRY(expect_nonempty_string(value, path));
            } else if (k == "workdir") {
                workdir = TRY(expect_nonempty_string(value, path));
                workdir_node = &value;
            } else if (k == "env") {
                const toml::table* env_table = TRY(expect_table(value, path));
                out.env_table = TRY(read_env_table(*env_table, path, EnvOrigin::ServiceEnv));
            } else if (k == "env_file") {
                TRY(read_env_files(value, path, out));
            } else if (k == "port") {
                out.port_location = location(value);
                if (const auto* flag = value.as_boolean()) {
                    spec.port.mode = flag->get() ? PortSpec::Mode::Auto : PortSpec::Mode::None;
                } else if (value.is_integer()) {
                    spec.port.mode = PortSpec::Mode::Pinned;
                    spec.port.number =
                        static_cast<std::uint16_t>(TRY(expect_integer(value, path, 1, 65535)));
                } else {
                    return fail(value,
                                "`{}`: expected a port number (1-65535), true (assign a free "
                                "port) or false (no port), found {}",
                                path, type_name(value));
                }
            } else if (k == "depends_on") {
                spec.depends_on = TRY(read_depends_on(value, path));
            } else if (k == "health_check") {
                spec.health_check = TRY(read_health_check(value, path));
            } else if (k == "restart") {
                std::string policy = TRY(expect_string(value, path));
                if (policy == "no") {
                    spec.restart = RestartPolicy::No;
                } else if (policy == "on-failure") {
                    spec.restart = RestartPolicy::OnFailure;
                } else if (policy == "always") {
                    spec.restart = RestartPolicy::Always;
                } else {
                    return fail(value,
                                "`{}`: expected \"no\", \"on-failure\" or \"always\", found `{}`",
                                path, policy);
                }
            } else if (k == "backoff") {
                spec.backoff = TRY(read_backoff(value, path));
            } else if (k == "min_uptime") {
                spec.min_uptime = TRY(expect_duration(value, path));
            } else if (k == "max_restarts") {
                spec.max_restarts = static_cast<int>(TRY(expect_integer(value, path, 0, 1000000)));
            } else if (k == "stop_signal") {
                std::string text = TRY(expect_string(value, path));
                auto signal = parse_signal(text);
                if (!signal) {
                    return fail(value, "`{}`: {}", path, signal.error().message());
                }
                spec.stop_signal = signal.release_value();
            } else if (k == "stop_timeout") {
                spec.stop_timeout = TRY(expect_duration(value, path));
            } else if (k == "replicas") {
                spec.replicas = static_cast<int>(TRY(expect_integer(value, path, 1, 1000)));
            } else if (k == "user") {
                spec.container.user = TRY(expect_nonempty_string(value, path));
            } else if (k == "volumes") {
                spec.container.volumes = TRY(read_volumes(value, path));
            } else if (k == "network") {
                std::string mode = TRY(expect_string(value, path));
                if (mode == "host") {
                    spec.container.network = NetworkMode::Host;
                } else if (mode == "none") {
                    spec.container.network = NetworkMode::None;
                } else {
                    return fail(value, "`{}`: expected \"host\" or \"none\", found `{}`", path,
                                mode);
                }
            } else if (k == "resources") {
                spec.container.resources = TRY(read_resources(value, path));
            } else if (k == "read_only") {
                spec.container.read_only = TRY(expect_bool(value, path));
            }
        }

        // Then the combinations: what kind of service this is, and which keys clash.
        auto key_of = [&](std::string_view wanted) -> const toml::key* {
            for (const auto& [key, value] : members) {
                if (key->str() == wanted) {
                    return key;
                }
            }
            return nullptr;
        };
        const toml::key* command = key_of("command");
        const toml::key* image = key_of("image");
        const toml::key* build = key_of("build");
        const toml::key* process = key_of("process");
        const toml::key* entrypoint = key_of("entrypoint");
        if (image != nullptr && build != nullptr) {
            return fail(*later(image, build),
                        "`image` and `build` clash in [{}]: a service has exactly one of "
                        "`command` (host), `image` or `build`",
                        prefix);
        }
        if (command == nullptr && image == nullptr && build == nullptr) {
            return base::invalid_argument(
                "{}: service `{}` needs one of `command` (a host process), `image` (an OCI image) "
                "or `build` (a CNB build)",
                spec.location.to_string(), spec.name);
        }
        spec.kind = image != nullptr   ? ServiceKind::Image
                    : build != nullptr ? ServiceKind::Build
                                       : ServiceKind::Host;
        if (entrypoint != nullptr && spec.kind != ServiceKind::Image) {
            return fail(*entrypoint,
                        "`entrypoint` needs `image` in [{}]: it replaces the image's Entrypoint",
                        prefix);
        }
        if (process != nullptr && spec.kind != ServiceKind::Build) {
            return fail(*process, "`process` needs `build` in [{}]: it picks a CNB process type",
                        prefix);
        }
        if (process != nullptr && command != nullptr) {
            return fail(*later(process, command),
                        "`command` and `process` clash in [{}]: both pick what runs; keep one",
                        prefix);
        }
        bool on_host = spec.runs_on_host();
        if (on_host) {
            for (const auto& [key, value] : members) {
                if (std::find(kContainerKeys.begin(), kContainerKeys.end(), key->str()) !=
                    kContainerKeys.end()) {
                    return fail(*key,
                                "`{}` in [{}] needs a container: it applies to `image` services "
                                "and to `build` with mode = \"container\", not to a process on "
                                "the host",
                                key->str(), prefix);
                }
            }
        }

        // Where it runs: a host directory, or a path inside the container.
        spec.workdir = on_host ? m_project_dir : "";
        if (workdir_node != nullptr) {
            if (on_host) {
                spec.workdir = resolve_path(m_project_dir, workdir);
            } else if (workdir[0] != '/') {
                return fail(*workdir_node,
                            "`{}.workdir`: a container's workdir must be an absolute path inside "
                            "the container, found `{}`",
                            prefix, workdir);
            } else {
                spec.workdir = resolve_path("/", workdir);
            }
        }

        if (spec.health_check) {
            auto kind = spec.health_check->kind;
            if ((kind == HealthCheck::Kind::Http || kind == HealthCheck::Kind::Tcp) &&
                spec.port.mode == PortSpec::Mode::None) {
                return fail(*table->get("health_check"),
                            "`{}.health_check`: a `{}` health check probes the service's port, "
                            "but `port = false`",
                            prefix, to_string(kind));
            }
            // The daemon refuses it at `up`; `locald config` must say so too.
            if (kind == HealthCheck::Kind::Notify && !on_host &&
                spec.container.network == NetworkMode::None) {
                return fail(*table->get("health_check"),
                            "`{}.health_check`: a `notify` health check needs network = \"host\" "
                            "(the notify socket is not reachable from network \"none\")",
                            prefix);
            }
        }
        if (spec.replicas > 1 && spec.port.mode == PortSpec::Mode::Pinned) {
            return fail(*table->get("replicas"),
                        "`replicas` and a pinned `port` clash in [{}]: {} replicas cannot all "
                        "listen on port {}",
                        prefix, spec.replicas, spec.port.number);
        }
        return out;
    }

    // The one of two keys written later in the file (where a clash is noticed).
    const toml::key* later(const toml::key* a, const toml::key* b) const {
        auto pa = a->source().begin;
        auto pb = b->source().begin;
        return std::tie(pa.line, pa.column) > std::tie(pb.line, pb.column) ? a : b;
    }

    base::Result<void> read_env_files(const toml::node& node, const std::string& path,
                                      TomlService& out) const {
        if (node.is_string()) {
            std::string file = TRY(expect_nonempty_string(node, path));
            out.spec.env_files.push_back(resolve_path(m_project_dir, file));
            out.env_file_locations.push_back(location(node));
            return base::ok();
        }
        if (const toml::array* files = node.as_array()) {
            for (size_t i = 0; i < files->size(); ++i) {
                std::string file =
                    TRY(expect_nonempty_string((*files)[i], fmt::format("{}[{}]", path, i)));
                out.spec.env_files.push_back(resolve_path(m_project_dir, file));
                out.env_file_locations.push_back(location((*files)[i]));
            }
            return base::ok();
        }
        return fail(node, "`{}`: expected a string or an array of strings, found {}", path,
                    type_name(node));
    }

    base::Result<Backoff> read_backoff(const toml::node& node, const std::string& path) const {
        const toml::table* table = TRY(expect_table(node, path));
        Backoff backoff;
        std::string where = fmt::format("in `{}`", path);
        for (const auto& [key, value] : in_file_order(*table)) {
            TRY(check_key(*key, kBackoffKeys, where));
            Duration duration =
                TRY(expect_duration(*value, fmt::format("{}.{}", path, key->str())));
            (key->str() == "initial" ? backoff.initial : backoff.max) = duration;
        }
        if (backoff.initial.count() == 0) {
            return fail(node, "`{}`: `initial` must be more than 0", path);
        }
        if (backoff.initial > backoff.max) {
            return fail(node, "`{}`: `initial` ({}) is larger than `max` ({})", path,
                        format_duration(backoff.initial), format_duration(backoff.max));
        }
        return backoff;
    }

    base::Result<std::vector<VolumeSpec>> read_volumes(const toml::node& node,
                                                       const std::string& path) const {
        const toml::array* array = node.as_array();
        if (array == nullptr) {
            return fail(node, "`{}`: expected an array of strings, found {}", path,
                        type_name(node));
        }
        std::vector<VolumeSpec> volumes;
        for (size_t i = 0; i < array->size(); ++i) {
            std::string item_path = fmt::format("{}[{}]", path, i);
            std::string text = TRY(expect_string((*array)[i], item_path));
            auto volume = parse_volume(text);
            if (!volume) {
                return fail((*array)[i], "`{}`: {}", item_path, volume.error().message());
            }
            volumes.push_back(volume.release_value());
        }
        return volumes;
    }

    base::Result<BuildSpec> read_build(const toml::node& node, const std::string& what) const {
        const toml::table* table = TRY(expect_table(node, what));
        BuildSpec build;
        std::string where = fmt::format("in `{}`", what);
        for (const auto& [key_ptr, value_ptr] : in_file_order(*table)) {
            const toml::key& key = *key_ptr;
            const toml::node& value = *value_ptr;
            TRY(check_key(key, kBuildKeys, where));
            std::string path = fmt::format("{}.{}", what, key.str());
            if (key.str() == "builder") {
                build.builder = TRY(expect_nonempty_string(value, path));
            } else if (key.str() == "buildpacks") {
                build.buildpacks = TRY(expect_string_array(value, path));
                for (size_t i = 0; i < build.buildpacks.size(); ++i) {
                    if (build.buildpacks[i].empty()) {
                        return fail(*value.as_array()->get(i),
                                    "`{}[{}]`: expected a non-empty "
                                    "buildpack reference",
                                    path, i);
                    }
                }
            } else if (key.str() == "env") {
                const toml::table* env = TRY(expect_table(value, path));
                for (auto& entry : TRY(read_env_table(*env, path, EnvOrigin::ServiceEnv))) {
                    build.env.emplace_back(entry.key, entry.value);
                }
            } else {
                std::string mode = TRY(expect_string(value, path));
                if (mode == "container") {
                    build.mode = BuildSpec::Mode::Container;
                } else if (mode == "host") {
                    build.mode = BuildSpec::Mode::Host;
                } else {
                    return fail(value, "`{}`: expected \"container\" or \"host\", found `{}`", path,
                                mode);
                }
            }
        }
        return build;
    }

    base::Result<std::vector<Dependency>> read_depends_on(const toml::node& node,
                                                          const std::string& what) const {
        std::vector<Dependency> out;
        std::set<std::string> seen;
        if (const toml::array* array = node.as_array()) {
            for (size_t i = 0; i < array->size(); ++i) {
                const toml::node& item = (*array)[i];
                std::string name =
                    TRY(expect_nonempty_string(item, fmt::format("{}[{}]", what, i)));
                if (!seen.insert(name).second) {
                    return fail(item, "`{}`: `{}` is listed twice", what, name);
                }
                out.push_back(Dependency{name, DependencyCondition::Started, location(item)});
            }
            return out;
        }
        const toml::table* table = node.as_table();
        if (table == nullptr) {
            return fail(node,
                        "`{}`: expected an array of service names or a table of NAME = "
                        "\"condition\", found {}",
                        what, type_name(node));
        }
        for (const auto& [key_ptr, value_ptr] : in_file_order(*table)) {
            const toml::key& key = *key_ptr;
            const toml::node& value = *value_ptr;
            std::string path = fmt::format("{}.{}", what, key.str());
            std::string condition = TRY(expect_string(value, path));
            Dependency dependency{std::string(key.str()), DependencyCondition::Started,
                                  location(key)};
            if (condition == "started") {
                dependency.condition = DependencyCondition::Started;
            } else if (condition == "healthy") {
                dependency.condition = DependencyCondition::Healthy;
            } else if (condition == "completed") {
                dependency.condition = DependencyCondition::Completed;
            } else if (condition == "completed_successfully") {
                dependency.condition = DependencyCondition::CompletedSuccessfully;
            } else {
                return fail(value,
                            "`{}`: expected \"started\", \"healthy\", \"completed\" or "
                            "\"completed_successfully\", found `{}`",
                            path, condition);
            }
            out.push_back(std::move(dependency));
        }
        std::sort(out.begin(), out.end(), [](const Dependency& a, const Dependency& b) {
            return std::tie(a.location.line, a.location.column) <
                   std::tie(b.location.line, b.location.column);
        });
        return out;
    }

    base::Result<HealthCheck> read_health_check(const toml::node& node,
                                                const std::string& what) const {
        const toml::table* table = TRY(expect_table(node, what));
        HealthCheck check;
        check.location = location(node);
        std::string where = fmt::format("in `{}`", what);
        const toml::key* probe = nullptr;
        for (const auto& [key_ptr, value_ptr] : in_file_order(*table)) {
            const toml::key& key = *key_ptr;
            const toml::node& value = *value_ptr;
            TRY(check_key(key, kHealthKeys, where));
            std::string path = fmt::format("{}.{}", what, key.str());
            std::string_view name = key.str();
            if (name == "interval") {
                check.interval = TRY(expect_duration(value, path));
                if (check.interval.count() == 0) {
                    return fail(value, "`{}`: must be more than 0", path);
                }
                continue;
            }
            if (name == "timeout") {
                check.timeout = TRY(expect_duration(value, path));
                if (check.timeout.count() == 0) {
                    return fail(value, "`{}`: must be more than 0", path);
                }
                continue;
            }
            if (name == "start_period") {
                check.start_period = TRY(expect_duration(value, path));
                continue;
            }
            if (name == "retries") {
                check.retries = static_cast<int>(TRY(expect_integer(value, path, 1, 1000000)));
                continue;
            }
            // A probe key.
            if (probe != nullptr) {
                const toml::key& later = location(*probe).line > location(key).line ||
                                                 (location(*probe).line == location(key).line &&
                                                  location(*probe).column > location(key).column)
                                             ? *probe
                                             : key;
                return fail(later,
                            "`{}` and `{}` clash in `{}`: a health check has exactly one probe "
                            "(http, tcp, exec, log or notify)",
                            probe->str(), key.str(), what);
            }
            probe = &key;
            if (name == "http") {
                check.kind = HealthCheck::Kind::Http;
                check.http_path = TRY(expect_string(value, path));
                if (!check.http_path.starts_with('/') ||
                    check.http_path.find_first_of(" \t\r\n") != std::string::npos) {
                    return fail(value, "`{}`: expected a URL path starting with `/`, found `{}`",
                                path, check.http_path);
                }
            } else if (name == "tcp" || name == "notify") {
                bool enabled = TRY(expect_bool(value, path));
                if (!enabled) {
                    return fail(value, "`{}`: expected true (remove the health_check to have none)",
                                path);
                }
                check.kind = name == "tcp" ? HealthCheck::Kind::Tcp : HealthCheck::Kind::Notify;
            } else if (name == "exec") {
                check.kind = HealthCheck::Kind::Exec;
                check.command = TRY(expect_command(value, path));
            } else {
                check.kind = HealthCheck::Kind::Log;
                check.pattern = TRY(expect_nonempty_string(value, path));
                // `/regex/` is a regular expression (host/probe.h): a bad one
                // must fail here, with its location, not when the probe starts.
                if (check.pattern.size() >= 2 && check.pattern.front() == '/' &&
                    check.pattern.back() == '/') {
                    std::string regex = check.pattern.substr(1, check.pattern.size() - 2);
                    try {
                        std::regex compiled(regex, std::regex::ECMAScript);
                    } catch (const std::regex_error& error) {
                        return fail(value, "`{}`: invalid regular expression `{}`: {}", path, regex,
                                    error.what());
                    }
                }
            }
        }
        if (probe == nullptr) {
            return fail(node,
                        "`{}`: expected one probe: http = \"/path\", tcp = true, exec = "
                        "\"command\", log = \"text\" or notify = true",
                        what);
        }
        return check;
    }

    base::Result<Resources> read_resources(const toml::node& node, const std::string& what) const {
        const toml::table* table = TRY(expect_table(node, what));
        Resources resources;
        std::string where = fmt::format("in `{}`", what);
        for (const auto& [key_ptr, value_ptr] : in_file_order(*table)) {
            const toml::key& key = *key_ptr;
            const toml::node& value = *value_ptr;
            TRY(check_key(key, kResourceKeys, where));
            std::string path = fmt::format("{}.{}", what, key.str());
            if (key.str() == "memory") {
                if (const auto* integer = value.as_integer()) {
                    resources.memory_bytes = static_cast<std::uint64_t>(TRY(
                        expect_integer(value, path, 1, std::numeric_limits<std::int64_t>::max())));
                    (void)integer;
                } else if (const auto* text = value.as_string()) {
                    auto bytes = parse_memory(text->get());
                    if (!bytes) {
                        return fail(value, "`{}`: {}", path, bytes.error().message());
                    }
                    resources.memory_bytes = bytes.value();
                } else {
                    return fail(value,
                                "`{}`: expected a size like \"512M\" or a number of bytes, "
                                "found {}",
                                path, type_name(value));
                }
            } else if (key.str() == "cpus") {
                double cpus = 0;
                if (const auto* integer = value.as_integer()) {
                    cpus = static_cast<double>(integer->get());
                } else if (const auto* number = value.as_floating_point()) {
                    cpus = number->get();
                } else {
                    return fail(value, "`{}`: expected a number of CPUs like 1.5, found {}", path,
                                type_name(value));
                }
                if (!(cpus > 0) || !std::isfinite(cpus)) {
                    return fail(value, "`{}`: expected a number of CPUs above 0, found {}", path,
                                cpus);
                }
                resources.cpus = cpus;
            } else {
                resources.pids =
                    TRY(expect_integer(value, path, 1, std::numeric_limits<std::int64_t>::max()));
            }
        }
        return resources;
    }

    // "NAME:/target[:ro|:rw]" or "PATH:/target[:ro|:rw]" where PATH starts with
    // `/`, `./`, `../` or is `.`.
    base::Result<VolumeSpec> parse_volume(const std::string& text) const {
        auto bad = [&](std::string_view why) {
            return base::invalid_argument(
                "invalid volume `{}`: {} (expected `NAME:/path`, `./host/path:/path` or "
                "`/host/path:/path`, optionally followed by `:ro` or `:rw`)",
                text, why);
        };
        std::vector<std::string> parts;
        size_t start = 0;
        for (;;) {
            size_t colon = text.find(':', start);
            parts.push_back(text.substr(start, colon - start));
            if (colon == std::string::npos) {
                break;
            }
            start = colon + 1;
        }
        if (parts.size() < 2 || parts.size() > 3) {
            return bad("expected two or three `:`-separated parts");
        }
        VolumeSpec volume;
        if (parts.size() == 3) {
            if (parts[2] == "ro") {
                volume.read_only = true;
            } else if (parts[2] != "rw") {
                return bad(fmt::format("unknown option `{}`", parts[2]));
            }
        }
        const std::string& source = parts[0];
        if (source.empty()) {
            return bad("the source is empty");
        }
        if (source[0] == '/' || source == "." || source == ".." || source.starts_with("./") ||
            source.starts_with("../")) {
            volume.kind = VolumeSpec::Kind::Bind;
            volume.source = resolve_path(m_project_dir, source);
        } else if (source[0] == '~') {
            return bad("`~` is not expanded; write the path out or make it relative (`./…`)");
        } else {
            if (!is_valid_service_name(source) && source.find('.') == std::string::npos) {
                return bad("a volume name matches [A-Za-z0-9_.-]+");
            }
            for (char c : source) {
                if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
                      c == '.')) {
                    return bad("a volume name matches [A-Za-z0-9_.-]+");
                }
            }
            volume.kind = VolumeSpec::Kind::Named;
            volume.source = source;
        }
        if (parts[1].empty() || parts[1][0] != '/') {
            return bad("the target must be an absolute path in the container");
        }
        volume.target = resolve_path("/", parts[1]);
        return volume;
    }

    std::string m_file;
    std::string m_project_dir;
};

}  // namespace

base::Result<TomlProject> parse_locald_toml(std::string_view text, const std::string& file,
                                            const std::string& project_dir) {
    Reader reader(file, project_dir);
    return reader.run(text);
}

}  // namespace locald::config::internal
