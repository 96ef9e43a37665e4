// daemon/image_service.h — what the daemon does for `image = "…"` services.
//
// Contract (docs/modules/daemon.md §Image services): the daemon never enters
// namespaces, runs curl or forks user-namespace helpers itself (it is
// multi-threaded). For an image service it
//   1. runs `locald __prepare-image --ref REF --dir <svc>/layer` as a child
//      (`ImagePreparation`): pull when missing, snapshots, a fresh writable
//      layer; its NDJSON progress becomes the service's "starting" reason
//      ("pulling …", "unpacking …") and its final result or error comes back
//      through a callback — a failure is the child's real message;
//   2. turns the result and the service's config into an ns::ContainerSpec
//      (`container_spec`: Docker's Entrypoint/Cmd rules, env = image <
//      service < injected, volumes, network, user, limits) written 0600 to
//      `<svc>/spec.json` in the service's 0700 dir;
//   3. supervises `launch_argv(spec.json)` like any host command, the
//      container joining the daemon's one held user namespace
//      (daemon/userns_holder.h) instead of mapping a fresh one per start;
//   4. removes the writable layer once the service is down for good with
//      `locald __prepare-image --cleanup` (`ImageCleanup`), and every
//      leftover of a previous daemon at startup (`retire_image_dirs`).
// Per-service dir: `<data>/services/<project>/<service>/` (spec.json, layer/,
// state/). Named volumes: `<data>/volumes/<project>-<name>/`.
// Everything here runs on the event loop's thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/child.h"
#include "base/error.h"
#include "base/event_loop.h"
#include "config/spec.h"
#include "image/result.h"
#include "ns/spec.h"

namespace locald::daemon {

struct ImageServiceDirs {
    std::string dir;    // <data>/services/<project>/<service> (0700)
    std::string layer;  // dir/layer: the writable layer (__prepare-image --dir)
    std::string spec;   // dir/spec.json (0600)
    std::string state;  // dir/state: the launcher's generated /etc files
};

// `project` may hold any character (it defaults to the dir's name): it is
// made path-safe here.
ImageServiceDirs image_service_dirs(const std::string& data_dir, const std::string& project,
                                    const std::string& service);
std::string services_root(const std::string& data_dir);

// THE command line that runs one container from its spec file. Kept in one
// place so the launcher can be swapped for a slimmer executable.
std::vector<std::string> launch_argv(const std::string& spec_path);

// `locald __run-provisioned`: what a `build = {…, mode = "host"}` service
// supervises (it provisions when the dump is stale, then execs the process).
std::vector<std::string> run_provisioned_argv();

struct ContainerInputs {
    const config::ProjectSpec* project = nullptr;
    const config::ServiceSpec* service = nullptr;
    image::PreparedInfo prepared;
    // The service's environment with provenance (config::service_env); entries
    // of origin Environment (the client's shell) are not passed into the
    // container, as Docker does not pass the host's.
    std::vector<config::EnvEntry> env;
    std::string notify_socket;  // "" = none
    ImageServiceDirs dirs;
    std::string data_dir;
    std::string run_dir;
    // spec.user_namespace: the daemon's held namespace (UsernsHolder::path),
    // mapped as the layer was unpacked; "" = the launcher makes its own.
    std::string user_namespace;
};

// One variable of a container's environment and the layer that set it.
struct ContainerEnvVar {
    std::string key;
    std::string value;
    // The service-side entry (origin, file:line); nullopt = the image's config.
    std::optional<config::EnvEntry> source;
};

// THE layering rule of container_spec, exposed so `locald env` and `locald
// run` show and use what the container gets: image env < the service's env
// (entries of origin Environment — the client's shell — dropped) < injected;
// NOTIFY_SOCKET is `notify_socket`, set only with network "host".
std::vector<ContainerEnvVar> container_env(const config::ServiceSpec& service,
                                           const std::vector<std::string>& image_env,
                                           const std::vector<config::EnvEntry>& env,
                                           const std::string& notify_socket);

// The container's spec. Creates named volume dirs; a missing bind source is
// an error naming it.
base::Result<ns::ContainerSpec> container_spec(const ContainerInputs& inputs);

// build = {…} with mode "container": the process `locald __provision
// --container` computed for a dump (its result's "container" object).
struct ProvisionedContainer {
    std::string rootfs;  // the builder's flattened rootfs (shared: never written)
    std::string user;    // "UID:GID"
    std::string layers;  // <dump>/layers → /layers
    std::string app;     // <dump>/app → /workspace
    std::vector<std::string> argv;
    std::string cwd;
    std::vector<std::string> env;  // the launch env, "K=V" (/layers paths)
};
// Strict about types; paths must be absolute.
base::Result<ProvisionedContainer> provisioned_container_from_json(const base::Json& json);

// The container of a build service (`inputs.prepared` unused): the builder
// rootfs read-only with a tmpfs /tmp, the dump's layers and app bound
// read-only at /layers and /workspace, the process's argv/cwd/user, env =
// launch env < the service's env < injected (container_env's rule), the
// service's network ("host" by default), a tty, `resources`, the held user
// namespace — as image services get.
base::Result<ns::ContainerSpec> build_container_spec(const ContainerInputs& inputs,
                                                     const ProvisionedContainer& container);

// Writes a build service's build.env as a JSON object, 0600, atomically, in
// the 0700 service dir, for `__provision` / `__run-provisioned --env-file`
// (values on a command line would be readable by every local user).
// Returns the file's path.
base::Result<std::string> write_build_env(
    const ImageServiceDirs& dirs, const std::vector<std::pair<std::string, std::string>>& env);

// Writes `spec` as JSON, 0600, atomically, creating the 0700 service dir.
base::Result<void> write_container_spec(const ns::ContainerSpec& spec,
                                        const ImageServiceDirs& dirs);

// One run of a `locald` internal command whose stdout+stderr is NDJSON,
// watched on the loop. Dropping it kills the child. It is done when the
// child has exited and its output reached EOF — or, when something the child
// left behind keeps the output open, kOutputGrace after the exit: that
// process group is then killed and the output closed.
class InternalCommand {
public:
    static constexpr std::chrono::milliseconds kOutputGrace{2000};
    using LineCallback = std::function<void(const std::string& line)>;
    using DoneCallback = std::function<void(base::ExitStatus status)>;
    static base::Result<std::unique_ptr<InternalCommand>> start(base::EventLoop& loop,
                                                                std::vector<std::string> argv,
                                                                LineCallback on_line,
                                                                DoneCallback on_done);
    ~InternalCommand();
    pid_t pid() const { return m_child.pid(); }

private:
    InternalCommand(base::EventLoop& loop) : m_loop(loop) {}
    void on_readable();
    void on_output_outlived_exit();
    // The output is over: its last unterminated line, then done if exited.
    void end_output();
    void maybe_finish();

    base::EventLoop& m_loop;
    base::Child m_child;
    pid_t m_group = 0;  // the child's process group (its pid), kept after it is reaped
    base::UniqueFd m_out;
    base::EventLoop::WatchId m_fd_watch = 0;
    base::EventLoop::WatchId m_exit_watch = 0;
    base::EventLoop::WatchId m_drain_timer = 0;
    std::string m_buffer;
    bool m_eof = false;
    std::optional<base::ExitStatus> m_status;
    bool m_finished = false;
    LineCallback m_on_line;
    DoneCallback m_on_done;
    std::shared_ptr<bool> m_alive = std::make_shared<bool>(true);
};

// `__prepare-image` for one service, with its events decoded.
class ImagePreparation {
public:
    struct Callbacks {
        // A short human line for the service's progress ("pulling …").
        std::function<void(const std::string& text, bool log_it)> on_progress;
        std::function<void(base::Result<image::PreparedInfo> result)> on_done;
    };
    static base::Result<std::unique_ptr<ImagePreparation>> start(base::EventLoop& loop,
                                                                 const std::string& reference,
                                                                 const std::string& layer_dir,
                                                                 Callbacks callbacks);

private:
    void on_line(const std::string& line);
    void on_exit(base::ExitStatus status);

    Callbacks m_callbacks;
    std::unique_ptr<InternalCommand> m_command;
    std::optional<base::Result<image::PreparedInfo>> m_result;
    std::string m_last_text;  // the last non-JSON output (a crash's message)
    // Pull progress aggregated per layer, for a readable one-line summary.
    std::map<std::string, std::pair<int64_t, int64_t>> m_layers;  // digest → {offset, size}
    std::string m_reference;
    int64_t m_last_reported = -1;
};

// `__prepare-image --cleanup DIR…`; `done` gets the error text ("" = ok).
base::Result<std::unique_ptr<InternalCommand>> start_image_cleanup(
    base::EventLoop& loop, const std::vector<std::string>& dirs,
    std::function<void(std::string error)> done);

// At daemon startup, before anything runs: moves every per-service dir a
// previous daemon left into `<data>/services/.trash-<pid>/` (renames, so it
// is instant however big the layers are and new preparations never meet
// them) and returns every trash dir to remove — this one and any an
// interrupted earlier cleanup left — for start_image_cleanup, which removes
// them in the background while the daemon already serves.
base::Result<std::vector<std::string>> retire_image_dirs(const std::string& data_dir);

}  // namespace locald::daemon
