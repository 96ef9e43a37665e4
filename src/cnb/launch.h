// cnb/launch.h — what the CNB launcher would exec for a finished build:
// the process (default or by type), its argv, working dir and exact
// environment (spec notes §4.4), in the container or — the Dump Layer's
// host mode (§7) — with container paths rewritten to where the layers and
// the app were dumped on the host.
//
// Contract: `compute_launch` reads `<layers>/config/metadata.toml` and the
// buildpacks' layer dirs (through base/confined.h inside the layers dir:
// everything there was written by buildpacks) and returns a LaunchPlan; it
// starts nothing. The environment is: the launcher's own env minus
// CNB_LAYERS_DIR, CNB_APP_DIR, CNB_PROCESS_TYPE, CNB_PLATFORM_API,
// CNB_DEPRECATION_MODE, with /cnb/process and /cnb/lifecycle dropped from
// PATH; then per buildpack in metadata order (skipped when its dir is
// absent): first bin→PATH and lib→LD_LIBRARY_PATH of all its layer dirs
// (sorted), then for each layer dir env/, env.launch/ and
// env.launch/<type>/. exec.d programs are listed in the launcher's order
// for the caller to run (apply their output with `apply_exec_d_output`);
// profile.d scripts are sourced by the shell argv of non-direct processes.
// Errors (exit 82 in the reference) name the file and what was expected.
// Depends on base only (toml++ is private).
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "cnb/build_metadata.h"
#include "cnb/env_files.h"

namespace locald::cnb {

// Which directories under `<layers>/<esc(id)>/` are layers. In an exported
// image every directory is (the launcher's rule); in a build's own layers
// dir only those whose `<layer>.toml` says launch = true are (build-only,
// cache-only and `*.ignore` dirs never reach the image). `*.ignore` is
// skipped in both.
enum class LayerSelection { AllDirectories, LaunchLayersOnly };

struct LaunchRequest {
    std::string layers_dir;  // host dir: config/metadata.toml and <esc(id)>/…
    // "" → the default process, or the user command when there is none.
    std::string process_type;
    // The command line after the process: overriding args for a process,
    // or the whole command when no process is selected.
    std::vector<std::string> user_args;
    // With no process: `launcher -- cmd …` (direct) or `launcher cmd …`
    // (a shell command).
    bool user_command_direct = true;
    std::vector<std::string> base_env;  // the launcher's environment, "K=V"
    std::string platform_api = "0.12";
    std::string exec_env = "production";  // process eligibility (Platform ≥0.15)
    std::string layers_path = "/layers";  // as the process sees them
    std::string app_path = "/workspace";
    LayerSelection layers = LayerSelection::AllDirectories;
    // Dump Layer host mode: the process runs on the host with `layers_dir`
    // as its layers and `host_app_dir` as its app. Root-dir entries use the
    // host paths; values from env files, command[0], working-dir and
    // absolute args have each `:`-separated component under `layers_path`
    // or `app_path` rewritten to the host dir; the command is looked up in
    // the computed PATH on the host. Paths baked into files (symlinks,
    // shebangs, RPATHs) are not rewritten.
    bool host_mode = false;
    std::string host_app_dir;
};

struct LaunchPlan {
    std::string process_type;  // "" for a user command
    std::string buildpack_id;  // who defined the process
    bool direct = true;
    // The file to execve: "" → argv[0] searched in the env's PATH (the
    // container launcher does that); set for shell processes, relative
    // commands (made absolute against the app dir) and in host mode.
    std::string executable;
    std::vector<std::string> argv;
    std::string working_dir;
    EnvMap env;
    std::vector<std::string> exec_d;  // programs to run, in order, before exec (argv[0])
    // Parallel to exec_d: the file to execve. It differs for a symlink to
    // the layers path (libpak's helpers: `exec.d/<name>` →
    // `/layers/<bp>/helper/helper`, dispatching on argv[0]), resolved inside
    // the layers dir — in host mode the link itself points at a /layers
    // the host does not have.
    std::vector<std::string> exec_d_files;
    // Sourced by a shell process's script, in order (such links resolved).
    std::vector<std::string> profile_d;
};

base::Result<LaunchPlan> compute_launch(const LaunchRequest& request);

// Applies the output of one exec.d program (TOML `NAME = "value"`) to
// `env`: every key overrides. `program` names it in errors.
base::Result<void> apply_exec_d_output(EnvMap& env, std::string_view output,
                                       std::string_view program);

// Host mode: runs `plan.exec_d` in order on the host, each with the
// current `plan.env`, cwd `app_dir`, stdin/stdout/stderr inherited and fd 3
// the write end of a pipe; a non-zero exit is an error naming the program;
// each output (at most 1 MiB) is applied with apply_exec_d_output, so a
// later program sees an earlier one's variables. In a container the same
// must happen inside it (not provided here).
base::Result<void> run_exec_d_on_host(LaunchPlan& plan, const std::string& app_dir);

// The Dump Layer rewrite of one value: each `:`-separated component equal to
// `from` or under `from/` gets `to` instead, for each (from, to) pair.
std::string rewrite_path_list(std::string_view value,
                              const std::vector<std::pair<std::string, std::string>>& prefixes);

}  // namespace locald::cnb
