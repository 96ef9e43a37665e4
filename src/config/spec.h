// config/spec.h — the resolved project model every later module consumes.
//
// Contract (docs/modules/config.md, ../shared/design/config.md): the config
// module reads `locald.toml`, `Procfile` and the `.env` dialect, validates them
// strictly (every error names `file:line[:col]` and what was expected) and
// produces plain data: a `ProjectSpec` holding `ServiceSpec`s. Everything in
// here is already resolved: paths are absolute, durations are milliseconds,
// signals are numbers, defaults are filled in, dependencies exist and are
// acyclic. Consumers never re-read the files and never see toml++ types.
// Depends only on base.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace locald::config {

using Duration = std::chrono::milliseconds;

// Where something was written. `column` is 0 when unknown (Procfile and .env
// errors name `file:line`; locald.toml errors name `file:line:col`).
struct SourceLocation {
    std::string file;  // absolute path
    int line = 0;      // 1-based, 0 = not from a file
    int column = 0;    // 1-based, 0 = unknown

    bool known() const { return line > 0; }
    // "file:line:col", "file:line", or "file".
    std::string to_string() const;
};

// A command exactly as written: a string runs under `/bin/sh -c` (so `$PORT`
// expands in the shell), an array is exec'd directly. Procfile commands are
// always strings.
struct CommandLine {
    enum class Form { None, Shell, Exec };
    Form form = Form::None;
    std::string shell;              // Form::Shell
    std::vector<std::string> argv;  // Form::Exec (never empty)

    bool empty() const { return form == Form::None; }
    // What to execve: {"/bin/sh", "-c", shell} or argv.
    std::vector<std::string> to_argv() const;
};

// ---------------------------------------------------------------- environment

// Where a variable came from, lowest precedence first.
enum class EnvOrigin {
    Environment,  // the client's environment at `up`/`config`/`env` time (base layer)
    DotEnv,       // `.env` or `.env.local` in the project dir
    ProjectEnv,   // `[env]` in locald.toml
    EnvFile,      // a service `env_file`, in the order listed
    ServiceEnv,   // the service's `env` table
    Injected,     // PORT, LOCALD_PROJECT, LOCALD_SERVICE, LOCALD_PORT_<NAME>, NOTIFY_SOCKET
};
std::string_view to_string(EnvOrigin origin);

struct EnvEntry {
    std::string key;
    std::string value;
    EnvOrigin origin = EnvOrigin::Environment;
    SourceLocation location;  // file and line that set it; unknown for Environment/Injected
};

// The base environment (the client's), looked up by name.
using Environment = std::map<std::string, std::string>;

// The process's own environment (`environ`) as an Environment.
Environment current_environment();

// ---------------------------------------------------------------- services

enum class ServiceKind { Host, Image, Build };
std::string_view to_string(ServiceKind kind);

struct PortSpec {
    enum class Mode {
        Auto,    // a free port is assigned (and kept across restarts) by the daemon
        Pinned,  // `port = 3000`
        None,    // `port = false`, or a non-`web` Procfile line
    };
    Mode mode = Mode::Auto;
    std::uint16_t number = 0;  // Mode::Pinned only
};

enum class DependencyCondition {
    Started,               // the dependency's process has been started
    Healthy,               // its health_check passed (it must have one)
    Completed,             // it exited, whatever the status
    CompletedSuccessfully  // it exited with status 0
};
std::string_view to_string(DependencyCondition condition);

struct Dependency {
    std::string service;
    DependencyCondition condition = DependencyCondition::Started;
    SourceLocation location;
};

struct HealthCheck {
    enum class Kind {
        Http,    // GET http://127.0.0.1:PORT<path>, 2xx/3xx passes; needs a port
        Tcp,     // connect to 127.0.0.1:PORT; needs a port
        Exec,    // run `command`; exit 0 passes
        Log,     // `pattern` (substring) appears in the service's output
        Notify,  // the service sends READY=1 on NOTIFY_SOCKET
    };
    Kind kind = Kind::Tcp;
    std::string http_path;  // Kind::Http, starts with '/'
    CommandLine command;    // Kind::Exec
    std::string pattern;    // Kind::Log
    Duration interval{1000};
    Duration timeout{1000};
    int retries = 3;  // consecutive failures before "unhealthy"
    Duration start_period{0};
    SourceLocation location;
};
std::string_view to_string(HealthCheck::Kind kind);

enum class RestartPolicy { No, OnFailure, Always };
std::string_view to_string(RestartPolicy policy);

struct Backoff {
    Duration initial{500};
    Duration max{30000};
};

struct Signal {
    int number = 15;
    std::string name = "SIGTERM";  // canonical spelling
};

// `volumes = ["pgdata:/var/lib/postgresql/data", "./initdb:/docker-entrypoint-initdb.d:ro"]`
struct VolumeSpec {
    enum class Kind {
        Named,  // a locald-managed volume, `source` is its name
        Bind,   // a host path, `source` is absolute (relative ones resolve against the project dir)
    };
    Kind kind = Kind::Named;
    std::string source;
    std::string target;  // absolute path in the container
    bool read_only = false;
};

struct Resources {
    std::optional<std::uint64_t> memory_bytes;  // "512M" → 536870912 (K/M/G/T are 1024-based)
    std::optional<double> cpus;                 // 1.5
    std::optional<std::int64_t> pids;
};

enum class NetworkMode { Host, None };
std::string_view to_string(NetworkMode mode);

// Keys that only apply to services running in a container (image, or build
// with mode = "container").
struct ContainerSpec {
    std::string user;  // "" = the image's; "name", "uid" or "uid:gid"
    std::vector<VolumeSpec> volumes;
    NetworkMode network = NetworkMode::Host;
    Resources resources;
    bool read_only = false;
};

struct BuildSpec {
    enum class Mode {
        Container,  // run the built image in a container
        Host,       // "Dump Layer": provision the layers to the host, run on the host
    };
    std::string builder = "heroku/builder:22";
    std::vector<std::string> buildpacks;
    std::vector<std::pair<std::string, std::string>> env;  // in key order
    Mode mode = Mode::Container;
};
std::string_view to_string(BuildSpec::Mode mode);

struct ServiceSpec {
    std::string name;  // [A-Za-z0-9_-]+
    ServiceKind kind = ServiceKind::Host;
    bool from_procfile = false;
    SourceLocation location;  // the `[service.NAME]` header or the Procfile line

    // Host: what runs. Image: replaces the image's Cmd. Build: replaces the
    // process's command (empty = `process` or the builder's default process).
    CommandLine command;
    CommandLine entrypoint;  // image only: replaces the image's Entrypoint

    // For services that run on the host (kind Host, Build with mode Host): an
    // absolute host path (default: the project dir). For services in a
    // container (Image, Build with mode Container): an absolute path inside the
    // container, or "" for the image's own WorkingDir.
    std::string workdir;

    // The variables locald sets for this service before injection, already
    // layered (.env < .env.local < [env] < env_file… < env): one entry per key,
    // in key order, each with the file and line that won.
    std::vector<EnvEntry> env;
    std::vector<std::string> env_files;  // absolute, in order

    PortSpec port;
    std::vector<Dependency> depends_on;  // in key order (table) or as written (array)
    std::optional<HealthCheck> health_check;

    RestartPolicy restart = RestartPolicy::OnFailure;
    Backoff backoff;
    Duration min_uptime{5000};  // a run at least this long resets the backoff
    int max_restarts = 10;      // consecutive restarts before the service is "failed"
    Signal stop_signal;
    Duration stop_timeout{10000};  // then SIGKILL to the whole process group
    int replicas = 1;

    // Image services.
    std::string image;  // reference as written; parsed by the oci module
    // Image services and Build services with mode Container.
    ContainerSpec container;

    // Build services.
    std::optional<BuildSpec> build;
    std::string process;  // CNB process type; "" = the builder's default

    // True when the service's process runs on the host (no container).
    bool runs_on_host() const {
        return kind == ServiceKind::Host ||
               (kind == ServiceKind::Build && build && build->mode == BuildSpec::Mode::Host);
    }
};

struct ProjectSpec {
    std::string name;  // [project] name, default: the directory's name
    std::string dir;   // absolute, symlinks resolved
    // Sorted by where they are defined: locald.toml services in file order,
    // then Procfile-only services in Procfile order.
    std::vector<ServiceSpec> services;
    // The project-wide layers (.env, .env.local, [env]) layered, in key order.
    std::vector<EnvEntry> env;
    // Every file that was read (locald.toml, Procfile, .env, .env.local,
    // env_files): what a watcher must watch to notice a change.
    std::vector<std::string> files;

    const ServiceSpec* find_service(std::string_view name) const;
};

// ---------------------------------------------------------------- entry points

// Loads the project in `dir`: `locald.toml` (plus a `Procfile` beside it for
// services the toml does not define), or a `Procfile` alone. `.env` values
// interpolate against earlier keys of the same file, then `environment`.
// Errors are InvalidArgument ("file:line:col: what was expected") or NotFound
// (no project file, a missing env_file, a missing dir).
base::Result<ProjectSpec> load_project(const std::string& dir, const Environment& environment);
// Same, with the process's own environment.
base::Result<ProjectSpec> load_project(const std::string& dir);

// What the daemon injects for `service` (highest precedence): PORT (unless the
// service set PORT itself), LOCALD_PROJECT, LOCALD_SERVICE, LOCALD_PORT_<NAME>
// for every service with a known port (NAME upper-cased, `-` → `_`), and
// NOTIFY_SOCKET when `notify_socket` is not empty. `ports` maps service names to
// their assigned ports; pinned ports are known without it.
std::vector<EnvEntry> injected_env(const ProjectSpec& project, const ServiceSpec& service,
                                   const std::map<std::string, std::uint16_t>& ports,
                                   const std::string& notify_socket);

// The variables `injected_env` sets from a port the daemon assigns at `up`
// that `ports` does not hold (an auto port not yet known): PORT when `service`
// has such a port and does not set PORT itself, and LOCALD_PORT_<NAME> of
// every such service. Whatever the environment, `.env` or `[env]` says for
// them is overridden at `up`, so a view without the daemon must not show it.
std::vector<std::string> unassigned_port_keys(const ProjectSpec& project,
                                              const ServiceSpec& service,
                                              const std::map<std::string, std::uint16_t>& ports);

// The full environment `service` runs with, in key order, with provenance:
// `base_environment` (origin Environment) overridden by `service.env`,
// overridden by `injected`.
std::vector<EnvEntry> service_env(const ProjectSpec& project, const ServiceSpec& service,
                                  const Environment& base_environment,
                                  const std::vector<EnvEntry>& injected);

// A topological start order (dependencies first; ties in definition order).
std::vector<const ServiceSpec*> start_order(const ProjectSpec& project);

}  // namespace locald::config
