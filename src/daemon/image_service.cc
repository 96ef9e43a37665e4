#include "daemon/image_service.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "base/atomic_file.h"
#include "base/json.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "base/sys.h"
#include "daemon/daemon.h"
#include "daemon/internal/spawn_helper.h"
#include "daemon/userns_holder.h"
#include "ns/launch_main.h"

namespace locald::daemon {

namespace {

// Path-safe form of a project name: [A-Za-z0-9._-], not starting with '.',
// with a hash suffix when anything had to change (so two names never meet).
std::string safe_name(const std::string& name) {
    std::string out;
    bool changed = name.empty();
    for (char c : name) {
        bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
        out += ok ? c : '_';
        changed |= !ok;
    }
    if (!out.empty() && out[0] == '.') {
        out[0] = '_';
        changed = true;
    }
    if (out.size() > 64) {
        out.resize(64);
        changed = true;
    }
    if (changed) {
        uint64_t hash = 1469598103934665603ull;
        for (char c : name) {
            hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
        }
        out += fmt::format("-{:08x}", static_cast<uint32_t>(hash ^ (hash >> 32)));
    }
    return out;
}

base::Result<void> mkdir_private(const std::string& path) {
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
        return base::errno_error("creating `{}`", path);
    }
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
        return base::errno_error("checking `{}`", path);
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
        return base::failed_precondition("`{}` is not a directory owned by us", path);
    }
    if ((st.st_mode & 0777) != 0700 && ::chmod(path.c_str(), 0700) != 0) {
        return base::errno_error("chmod 0700 `{}`", path);
    }
    return base::ok();
}

base::ErrorKind kind_from_name(std::string_view name) {
    if (name == "InvalidArgument")
        return base::ErrorKind::InvalidArgument;
    if (name == "NotFound")
        return base::ErrorKind::NotFound;
    if (name == "PermissionDenied")
        return base::ErrorKind::PermissionDenied;
    if (name == "Unavailable")
        return base::ErrorKind::Unavailable;
    if (name == "Unauthenticated")
        return base::ErrorKind::Unauthenticated;
    if (name == "DataLoss")
        return base::ErrorKind::DataLoss;
    return base::ErrorKind::Internal;
}

std::string json_text(const base::Json& json, std::string_view key) {
    const base::Json* value = json.find(key);
    return value && value->is_string() ? value->as_string() : std::string();
}

// "12.3 MB" (decimal units, as the CLI's pull progress); the daemon links no oci.
std::string human_bytes(int64_t bytes) {
    const char* units[] = {"B", "kB", "MB", "GB", "TB"};
    double value = static_cast<double>(std::max<int64_t>(bytes, 0));
    int unit = 0;
    while (value >= 1000 && unit < 4) {
        value /= 1000;
        ++unit;
    }
    return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, units[unit]);
}

int64_t json_int(const base::Json& json, std::string_view key) {
    const base::Json* value = json.find(key);
    return value && value->is_int() ? value->as_int() : -1;
}

}  // namespace

// ---------------------------------------------------------------- paths

std::string services_root(const std::string& data_dir) {
    return data_dir + "/services";
}

ImageServiceDirs image_service_dirs(const std::string& data_dir, const std::string& project,
                                    const std::string& service) {
    ImageServiceDirs dirs;
    // Service names are [A-Za-z0-9_-]+ (config), project names are free.
    dirs.dir = fmt::format("{}/{}/{}", services_root(data_dir), safe_name(project), service);
    dirs.layer = dirs.dir + "/layer";
    dirs.spec = dirs.dir + "/spec.json";
    dirs.state = dirs.dir + "/state";
    return dirs;
}

// The full `locald` (this binary, or `locald` beside `locald-daemon`),
// resolved once: the internal modes live there.
static const std::string& internal_binary() {
    static const std::string path = locald_executable();
    return path;
}

std::vector<std::string> launch_argv(const std::string& spec_path) {
    // The slim `locald-launch` beside `locald` when present (it starts in ~1 ms
    // instead of loading the whole CLI), else `locald __launch`.
    // ns::launch_command is its own object file: this links nothing of the
    // launcher (nor libseccomp) into `locald-daemon`.
    return ns::launch_command(spec_path, internal_binary());
}

std::vector<std::string> run_provisioned_argv() {
    return {internal_binary(), "__run-provisioned"};
}

std::vector<std::string> holder_argv() {
    // launch_main takes `--hold-userns` in place of a spec path, so the same
    // choice applies: the slim executable (the daemon stays free of the
    // launcher's libraries), else `locald __launch --hold-userns`.
    return ns::launch_command(ns::kHoldUsernsFlag, internal_binary());
}

// ---------------------------------------------------------------- the spec

std::vector<ContainerEnvVar> container_env(const config::ServiceSpec& service,
                                           const std::vector<std::string>& image_env,
                                           const std::vector<config::EnvEntry>& env,
                                           const std::string& notify_socket) {
    std::vector<ContainerEnvVar> out;
    auto set = [&out](ContainerEnvVar var) {
        for (auto& existing : out) {
            if (existing.key == var.key) {
                existing = std::move(var);
                return;
            }
        }
        out.push_back(std::move(var));
    };
    // env = image env < service env (.env, [env], env_file, env) < injected.
    for (const auto& entry : image_env) {
        size_t equals = entry.find('=');
        set({entry.substr(0, equals),
             equals == std::string::npos ? std::string() : entry.substr(equals + 1), std::nullopt});
    }
    for (const auto& entry : env) {
        if (entry.origin == config::EnvOrigin::Environment) {
            continue;
        }
        if (entry.key == "NOTIFY_SOCKET") {
            continue;  // decided below
        }
        set({entry.key, entry.value, entry});
    }
    // NOTIFY_SOCKET is the supervisor's abstract unix socket: abstract names
    // live in the network namespace, so it is reachable only with network
    // "host"; with "none" it is not set (a notify health check cannot work).
    if (!notify_socket.empty() && service.container.network == config::NetworkMode::Host) {
        config::EnvEntry injected;
        injected.key = "NOTIFY_SOCKET";
        injected.value = notify_socket;
        injected.origin = config::EnvOrigin::Injected;
        set({injected.key, injected.value, injected});
    }
    return out;
}

namespace {

// What every container the daemon supervises gets from its service and the
// daemon: network, limits, its own pty, state and seccomp cache dirs, and the
// daemon's user namespace.
void set_runtime(const ContainerInputs& in, ns::ContainerSpec& spec) {
    const config::ServiceSpec& service = *in.service;
    spec.network = service.container.network == config::NetworkMode::None ? ns::NetworkMode::None
                                                                          : ns::NetworkMode::Host;
    const auto& resources = service.container.resources;
    if (resources.memory_bytes) {
        spec.resources.memory_bytes = static_cast<int64_t>(*resources.memory_bytes);
    }
    spec.resources.cpus = resources.cpus;
    spec.resources.pids = resources.pids;
    // The container gets its own pty, relayed by the launcher to the
    // supervisor's PTY, so `tty`, job control and `attach` work inside.
    spec.tty = true;
    spec.state_dir = in.dirs.state;
    spec.seccomp_cache_dir = in.run_dir.empty() ? std::string() : in.run_dir + "/seccomp";
    // The daemon's held user namespace (UsernsHolder): joining it skips the
    // two setuid id-map helpers per start; "" = a fresh one per container.
    spec.user_namespace = in.user_namespace;
}

}  // namespace

base::Result<ns::ContainerSpec> container_spec(const ContainerInputs& in) {
    const config::ServiceSpec& service = *in.service;
    const image::ImageDefaults& defaults = in.prepared.defaults;
    ns::ContainerSpec spec;
    spec.name = service.name;
    spec.hostname = service.name;
    spec.rootfs = in.prepared.rootfs;

    // Docker: `entrypoint` replaces Entrypoint and drops the image's Cmd;
    // `command` replaces Cmd. A string command runs under /bin/sh -c, as for
    // host services (config contract).
    std::vector<std::string> argv;
    bool own_entrypoint = !service.entrypoint.empty();
    argv = own_entrypoint ? service.entrypoint.to_argv() : defaults.entrypoint;
    if (!service.command.empty()) {
        auto cmd = service.command.to_argv();
        argv.insert(argv.end(), cmd.begin(), cmd.end());
    } else if (!own_entrypoint) {
        argv.insert(argv.end(), defaults.cmd.begin(), defaults.cmd.end());
    }
    if (argv.empty()) {
        return base::invalid_argument(
            "{}: service `{}`: the image `{}` has no Entrypoint or Cmd; set `command`",
            service.location.to_string(), service.name, service.image);
    }
    spec.args = std::move(argv);

    for (auto& var : container_env(service, defaults.env, in.env, in.notify_socket)) {
        spec.env.push_back(var.key + "=" + var.value);
    }

    spec.cwd = !service.workdir.empty()        ? service.workdir
               : !defaults.working_dir.empty() ? defaults.working_dir
                                               : std::string("/");
    if (spec.cwd.front() != '/') {
        return base::invalid_argument("service `{}`: workdir `{}` must be absolute", service.name,
                                      spec.cwd);
    }
    spec.user = service.container.user.empty() ? defaults.user : service.container.user;

    for (const auto& volume : service.container.volumes) {
        ns::Mount mount;
        mount.destination = volume.target;
        mount.read_only = volume.read_only;
        if (volume.kind == config::VolumeSpec::Kind::Bind) {
            mount.kind = ns::MountKind::Bind;
            mount.source = volume.source;  // absolute: resolved against the project dir
            struct stat st;
            if (::stat(mount.source.c_str(), &st) != 0) {
                return base::errno_error("service `{}`: bind volume source `{}`", service.name,
                                         mount.source);
            }
        } else {
            mount.kind = ns::MountKind::Volume;
            std::string volumes = in.data_dir + "/volumes";
            TRY(mkdir_private(volumes));
            mount.source =
                fmt::format("{}/{}-{}", volumes, safe_name(in.project->name), volume.source);
            if (::mkdir(mount.source.c_str(), 0755) != 0 && errno != EEXIST) {
                return base::errno_error("creating the volume `{}`", mount.source);
            }
        }
        spec.mounts.push_back(std::move(mount));
    }
    spec.read_only_rootfs = service.container.read_only;
    set_runtime(in, spec);
    return spec;
}

base::Result<ProvisionedContainer> provisioned_container_from_json(const base::Json& json) {
    ProvisionedContainer out;
    if (!json.is_object()) {
        return base::invalid_argument("provision result: `container` is not an object");
    }
    auto text = [&](std::string_view key, bool path) -> base::Result<std::string> {
        const base::Json* value = json.find(key);
        if (value == nullptr || !value->is_string() || value->as_string().empty() ||
            (path && value->as_string().front() != '/')) {
            return base::invalid_argument("provision result: `container.{}` is not {}", key,
                                          path ? "an absolute path" : "a non-empty string");
        }
        return value->as_string();
    };
    auto list = [&](std::string_view key) -> base::Result<std::vector<std::string>> {
        const base::Json* value = json.find(key);
        if (value == nullptr || !value->is_array()) {
            return base::invalid_argument("provision result: `container.{}` is not a list", key);
        }
        std::vector<std::string> items;
        for (const auto& item : value->as_array()) {
            if (!item.is_string()) {
                return base::invalid_argument("provision result: `container.{}` holds a non-string",
                                              key);
            }
            items.push_back(item.as_string());
        }
        return items;
    };
    out.rootfs = TRY(text("rootfs", true));
    out.user = TRY(text("user", false));
    out.layers = TRY(text("layers", true));
    out.app = TRY(text("app", true));
    out.cwd = TRY(text("cwd", true));
    out.argv = TRY(list("argv"));
    out.env = TRY(list("env"));
    if (out.argv.empty()) {
        return base::invalid_argument("provision result: `container.argv` is empty");
    }
    return out;
}

base::Result<ns::ContainerSpec> build_container_spec(const ContainerInputs& in,
                                                     const ProvisionedContainer& container) {
    const config::ServiceSpec& service = *in.service;
    ns::ContainerSpec spec;
    spec.name = service.name;
    spec.hostname = service.name;
    // The builder's rootfs is shared by every provision and container of
    // that builder: read-only, with a private /tmp.
    spec.rootfs.path = container.rootfs;
    spec.read_only_rootfs = true;
    spec.args = container.argv;
    for (auto& var : container_env(service, container.env, in.env, in.notify_socket)) {
        spec.env.push_back(var.key + "=" + var.value);
    }
    spec.cwd = container.cwd;
    spec.user = container.user;
    for (const auto& [source, destination] :
         {std::pair{container.layers, "/layers"}, std::pair{container.app, "/workspace"}}) {
        ns::Mount mount;
        mount.kind = ns::MountKind::Bind;
        mount.source = source;
        mount.destination = destination;
        mount.read_only = true;
        struct stat st;
        if (::stat(mount.source.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
            return base::failed_precondition("service `{}`: the provisioned dir `{}` is missing",
                                             service.name, mount.source);
        }
        spec.mounts.push_back(std::move(mount));
    }
    ns::Mount tmp;
    tmp.kind = ns::MountKind::Tmpfs;
    tmp.destination = "/tmp";
    tmp.options = {"mode=1777"};
    spec.mounts.push_back(std::move(tmp));
    set_runtime(in, spec);
    return spec;
}

base::Result<std::string> write_build_env(
    const ImageServiceDirs& dirs, const std::vector<std::pair<std::string, std::string>>& env) {
    std::string parent = dirs.dir.substr(0, dirs.dir.rfind('/'));
    TRY(base::mkdir_p(parent, 0700));
    TRY(mkdir_private(dirs.dir));
    base::Json object = base::Json::object();
    for (const auto& [key, value] : env) {
        object.set(key, value);
    }
    std::string text = object.dump();
    std::string path =
        fmt::format("{}/build-env-{:016x}.json", dirs.dir, std::hash<std::string>{}(text));
    TRY(base::atomic_write_file(path, text, 0600));
    return path;
}

base::Result<void> write_container_spec(const ns::ContainerSpec& spec,
                                        const ImageServiceDirs& dirs) {
    std::string parent = dirs.dir.substr(0, dirs.dir.rfind('/'));
    TRY(base::mkdir_p(parent, 0700));
    TRY(mkdir_private(dirs.dir));
    TRY(mkdir_private(dirs.state));
    return base::atomic_write_file(dirs.spec, ns::to_json(spec).dump(), 0600);
}

// ---------------------------------------------------------------- child runs

base::Result<std::unique_ptr<InternalCommand>> InternalCommand::start(base::EventLoop& loop,
                                                                      std::vector<std::string> argv,
                                                                      LineCallback on_line,
                                                                      DoneCallback on_done) {
    std::unique_ptr<InternalCommand> command(new InternalCommand(loop));
    command->m_on_line = std::move(on_line);
    command->m_on_done = std::move(on_done);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        return base::errno_error("creating a pipe for `{}`", argv.size() > 1 ? argv[1] : "");
    }
    base::UniqueFd read_end(fds[0]);
    base::UniqueFd write_end(fds[1]);
    int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) {
        return base::errno_error("opening /dev/null");
    }
    base::UniqueFd null(null_fd);
    // Its own process group: cancelling kills its helpers too.
    auto child = internal::spawn_helper(argv, null.get(), write_end.get());
    if (!child) {
        return child.release_error();
    }
    command->m_child = child.release_value();
    command->m_group = command->m_child.pid();
    write_end.reset();
    ::fcntl(read_end.get(), F_SETFL, ::fcntl(read_end.get(), F_GETFL) | O_NONBLOCK);
    command->m_out = std::move(read_end);
    InternalCommand* raw = command.get();
    command->m_fd_watch =
        TRY(loop.add_fd(raw->m_out.get(), EPOLLIN, [raw](uint32_t) { raw->on_readable(); }));
    command->m_exit_watch = TRY(loop.watch_child(raw->m_child, [raw](base::ExitStatus status) {
        raw->m_exit_watch = 0;
        raw->m_status = status;
        if (!raw->m_eof) {
            // The output normally ends with the exit; a leftover that holds it
            // open must not keep the service `starting` for ever.
            raw->m_drain_timer = raw->m_loop.add_timer(kOutputGrace, [raw] {
                raw->m_drain_timer = 0;
                raw->on_output_outlived_exit();
            });
        }
        raw->maybe_finish();
    }));
    return command;
}

namespace {

// Reaps the members of process group `pgid` that were re-parented to this
// process (the daemon is a child subreaper): a cancelled child's helpers (the
// unpacker's user-namespace child, newuidmap…) die with the SIGKILL to the
// group but nobody else waits for them. Only processes whose parent is us
// and whose group is `pgid` are waited for, so no supervised service (each
// has its own session and group) can lose its exit status to this.
void reap_group_orphans(pid_t pgid) {
    const pid_t self = ::getpid();
    for (int pass = 0; pass < 3; ++pass) {
        DIR* proc = ::opendir("/proc");
        if (proc == nullptr) {
            return;
        }
        std::vector<pid_t> ours;
        while (struct dirent* entry = ::readdir(proc)) {
            char* end = nullptr;
            long pid = std::strtol(entry->d_name, &end, 10);
            if (pid <= 0 || *end != '\0') {
                continue;
            }
            auto stat = base::read_file(fmt::format("/proc/{}/stat", pid), 4096);
            if (!stat) {
                continue;
            }
            // "pid (comm) state ppid pgrp …": comm may hold anything, so
            // parse from its last ')'.
            size_t close = stat->rfind(')');
            char state = 0;
            int ppid = 0;
            int pgrp = 0;
            if (close == std::string::npos ||
                std::sscanf(stat->c_str() + close + 1, " %c %d %d", &state, &ppid, &pgrp) != 3) {
                continue;
            }
            if (ppid == self && pgrp == pgid) {
                ours.push_back(static_cast<pid_t>(pid));
            }
        }
        ::closedir(proc);
        if (ours.empty()) {
            return;
        }
        for (pid_t pid : ours) {
            ::kill(pid, SIGKILL);  // already sent to the group; cheap insurance
            while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
            }
        }
    }
}

}  // namespace

InternalCommand::~InternalCommand() {
    *m_alive = false;
    if (m_drain_timer != 0) {
        m_loop.cancel_timer(m_drain_timer);
    }
    if (m_fd_watch != 0) {
        m_loop.remove(m_fd_watch);
    }
    if (m_exit_watch != 0) {
        m_loop.remove(m_exit_watch);
    }
    if (m_child.valid()) {
        const pid_t group = m_child.pid();
        ::kill(-group, SIGKILL);  // the group: its user-namespace helpers too
        (void)m_child.kill(SIGKILL);
        (void)m_child.wait();
        reap_group_orphans(group);
    }
}

void InternalCommand::on_readable() {
    std::weak_ptr<bool> alive = m_alive;
    char chunk[16384];
    for (;;) {
        ssize_t n = ::read(m_out.get(), chunk, sizeof chunk);
        if (n > 0) {
            m_buffer.append(chunk, static_cast<size_t>(n));
            size_t newline;
            while ((newline = m_buffer.find('\n')) != std::string::npos) {
                std::string line = m_buffer.substr(0, newline);
                m_buffer.erase(0, newline + 1);
                if (m_on_line) {
                    m_on_line(line);
                }
                if (alive.expired()) {
                    return;
                }
            }
            if (m_buffer.size() > (1u << 20)) {
                m_buffer.clear();  // a runaway line: drop it, keep reading
            }
            continue;
        }
        if (n < 0 && (errno == EINTR)) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        // EOF (or an error): then wait for the exit.
        end_output();
        return;
    }
}

void InternalCommand::end_output() {
    std::weak_ptr<bool> alive = m_alive;
    if (!m_buffer.empty() && m_on_line) {
        std::string line = std::move(m_buffer);  // the last, unterminated line
        m_buffer.clear();
        m_on_line(line);
        if (alive.expired()) {
            return;
        }
    }
    m_loop.remove(m_fd_watch);
    m_fd_watch = 0;
    m_out.reset();
    m_eof = true;
    maybe_finish();
}

void InternalCommand::on_output_outlived_exit() {
    // The child's process group: whatever it left holding the pipe. It is
    // reaped here when it was re-parented to us (the daemon is a subreaper).
    // The leader is reaped; while its group has members the kernel does not
    // hand its number to a new process, so a live process with that pid means
    // the group is gone and the number reused: leave that one alone.
    if (::kill(m_group, 0) != 0 && errno == ESRCH) {
        ::kill(-m_group, SIGKILL);
        reap_group_orphans(m_group);
    }
    std::weak_ptr<bool> alive = m_alive;
    on_readable();  // what is still buffered in the pipe
    if (!alive.expired() && !m_eof) {
        end_output();
    }
}

void InternalCommand::maybe_finish() {
    if (m_finished || !m_eof || !m_status) {
        return;
    }
    if (m_drain_timer != 0) {
        m_loop.cancel_timer(m_drain_timer);
        m_drain_timer = 0;
    }
    m_finished = true;
    auto done = std::move(m_on_done);
    base::ExitStatus status = *m_status;
    if (done) {
        done(status);  // may destroy this: nothing after
    }
}

// ---------------------------------------------------------------- preparation

base::Result<std::unique_ptr<ImagePreparation>> ImagePreparation::start(
    base::EventLoop& loop, const std::string& reference, const std::string& layer_dir,
    Callbacks callbacks) {
    std::unique_ptr<ImagePreparation> prep(new ImagePreparation());
    prep->m_callbacks = std::move(callbacks);
    prep->m_reference = reference;
    ImagePreparation* raw = prep.get();
    prep->m_command = TRY(InternalCommand::start(
        loop, {internal_binary(), "__prepare-image", "--ref", reference, "--dir", layer_dir},
        [raw](const std::string& line) { raw->on_line(line); },
        [raw](base::ExitStatus status) { raw->on_exit(status); }));
    return prep;
}

void ImagePreparation::on_line(const std::string& line) {
    if (line.empty()) {
        return;
    }
    base::Result<base::Json> parsed = base::invalid_argument("not JSON");
    if (line.front() == '{') {
        parsed = base::Json::parse(line);
    }
    if (!parsed || !parsed->is_object()) {
        m_last_text = line;  // plain stderr text (a crash, a warning)
        if (m_callbacks.on_progress) {
            m_callbacks.on_progress(line, true);
        }
        return;
    }
    const base::Json& event = *parsed;
    std::string kind = json_text(event, "event");
    auto progress = [&](const std::string& text, bool log_it) {
        if (m_callbacks.on_progress) {
            m_callbacks.on_progress(text, log_it);
        }
    };
    if (kind == "result") {
        m_result = image::prepared_from_json(event);
    } else if (kind == "error") {
        m_result =
            base::Error(kind_from_name(json_text(event, "kind")), json_text(event, "message"));
    } else if (kind == "step") {
        progress(json_text(event, "message"), true);
    } else if (kind == "warning") {
        progress("warning: " + json_text(event, "message"), true);
    } else if (kind == "layer-start" || kind == "layer-bytes" || kind == "layer-done" ||
               kind == "layer-skip") {
        std::string digest = json_text(event, "digest");
        int64_t size = json_int(event, "size");
        auto& [offset, total] = m_layers[digest];
        total = size;
        if (kind == "layer-done" || kind == "layer-skip") {
            offset = size > 0 ? size : offset;
        } else {
            offset = std::max<int64_t>(offset, json_int(event, "offset"));
        }
        int64_t done = 0;
        int64_t all = 0;
        int finished = 0;
        for (const auto& [d, layer] : m_layers) {
            done += std::max<int64_t>(layer.first, 0);
            all += std::max<int64_t>(layer.second, 0);
            finished += layer.second > 0 && layer.first >= layer.second ? 1 : 0;
        }
        bool log_it = kind == "layer-done";
        // Throttled: a line per 10 % of the bytes, or per finished layer.
        if (log_it || m_last_reported < 0 ||
            done - m_last_reported >= std::max<int64_t>(all / 10, 1)) {
            m_last_reported = done;
            progress(fmt::format("pulling {}: {} of {} ({}/{} layers)", m_reference,
                                 human_bytes(done), human_bytes(all), finished, m_layers.size()),
                     log_it);
        }
    } else if (kind == "layer-retry") {
        progress(fmt::format("pulling {}: retrying {}: {}", m_reference, json_text(event, "digest"),
                             json_text(event, "message")),
                 true);
    } else if (kind == "resolving" || kind == "resolved") {
        progress(fmt::format("pulling {}", m_reference), false);
    }
}

void ImagePreparation::on_exit(base::ExitStatus status) {
    base::Result<image::PreparedInfo> result = base::internal_error("no result");
    if (m_result && (!m_result->has_value() || status.success())) {
        result = std::move(*m_result);
    } else {
        result = base::internal_error(
            "preparing the image `{}` failed: `locald __prepare-image` {}{}{}", m_reference,
            status.to_string(), m_last_text.empty() ? "" : ": ", m_last_text);
    }
    auto done = std::move(m_callbacks.on_done);
    if (done) {
        done(std::move(result));  // may destroy this: nothing after
    }
}

base::Result<std::unique_ptr<InternalCommand>> start_image_cleanup(
    base::EventLoop& loop, const std::vector<std::string>& dirs,
    std::function<void(std::string error)> done) {
    std::vector<std::string> argv = {internal_binary(), "__prepare-image", "--cleanup"};
    argv.insert(argv.end(), dirs.begin(), dirs.end());
    auto output = std::make_shared<std::string>();
    return InternalCommand::start(
        loop, std::move(argv),
        [output](const std::string& line) {
            if (output->size() < 4096) {
                *output += line + "\n";
            }
        },
        [output, done = std::move(done)](base::ExitStatus status) {
            done(status.success() ? std::string()
                                  : fmt::format("{}: {}", status.to_string(), *output));
        });
}

base::Result<std::vector<std::string>> retire_image_dirs(const std::string& data_dir) {
    const std::string root = services_root(data_dir);
    DIR* projects = ::opendir(root.c_str());
    if (projects == nullptr) {
        if (errno == ENOENT) {
            return std::vector<std::string>{};  // nothing ever ran
        }
        return base::errno_error("listing `{}`", root);
    }
    const std::string trash_name = fmt::format(".trash-{}", ::getpid());
    const std::string trash = root + "/" + trash_name;
    std::vector<std::string> names;
    while (dirent* p = ::readdir(projects)) {
        std::string name = p->d_name;
        if (name != "." && name != ".." && name != trash_name) {
            names.push_back(std::move(name));
        }
    }
    ::closedir(projects);
    std::vector<std::string> remove;
    int moved = 0;
    for (const auto& name : names) {
        if (name.starts_with(".trash-")) {
            remove.push_back(root + "/" + name);  // an interrupted earlier cleanup
            continue;
        }
        if (moved == 0 && ::mkdir(trash.c_str(), 0700) != 0 && errno != EEXIST) {
            return base::errno_error("creating `{}`", trash);
        }
        // A numbered name: a trash dir left by an earlier daemon with our pid
        // may hold the same project.
        std::string target = fmt::format("{}/{}-{}", trash, moved++, name);
        if (::rename((root + "/" + name).c_str(), target.c_str()) != 0) {
            return base::errno_error("moving `{}/{}` aside", root, name);
        }
    }
    if (moved > 0) {
        remove.push_back(trash);
    }
    return remove;
}

}  // namespace locald::daemon
