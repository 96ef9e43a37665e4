// cnb/build.h — the build phase: each buildpack of the detected group runs
// its bin/build with the exact CNB contract, and the results become
// `<layers>/config/metadata.toml` (spec notes §3.1–3.8).
//
// Contract: `run_build` runs the group in order through an injected
// BuildpackRunner (the real one runs each bin/build in the builder rootfs
// through ns::Launcher; tests inject their own to check sequencing and env).
// Per buildpack: `<layers>/<esc(id)>` is created mode 0777; a fresh plan
// file holds every `requirements` of each remaining plan entry this buildpack
// provides; argv is `<bp>/bin/build <layers>/<esc(id)> <platform> <plan>`
// (never canonicalised: multi-call binaries dispatch on it), cwd the app
// dir; the environment is exactly §3.5: the builder's env filtered to the
// allow-list, plus every earlier buildpack's build=true layers (root dirs,
// env/, env.build/ in `<layer>.toml` name order), then — on a copy —
// `<platform>/env` (unless clear-env), the builder's build-config env
// (unsuffixed = default) and the CNB_* variables of the buildpack's API.
// After a buildpack exits 0: build.toml's unmet names must be in its plan
// (the others are removed from the plan), launch.toml is parsed with its
// API's rules, every `<layer>.toml` in name order is read and a layer whose
// [types] are all false is renamed `<layer>.ignore`, and the SBOM files
// `{launch,build,<layer>}.sbom.{cdx,spdx,syft}.json` are checked against the
// declared sbom-formats and copied to `<layers>/sbom/{launch,build,cache}/
// <esc(id)>/[<layer>/]sbom.<ext>.json`. A non-zero exit stops
// the build: BuildResult.failed (the reference's exit 51); a malformed file
// or a runner failure is an Error (exit 52). Everything under `<layers>` is
// buildpack-written: it is read and renamed through base/confined.h inside
// the layers dir, so planted symlinks never reach outside it.
// Depends on base, ns (the runner).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "cnb/build_metadata.h"
#include "cnb/env_files.h"
#include "ns/spec.h"

namespace locald::cnb {

// One buildpack of the group, in group order — filled by detection from
// group.toml and the buildpack's buildpack.toml.
struct BuildGroupEntry {
    std::string id;
    std::string version;
    std::string api;         // the buildpack's Buildpack API, e.g. "0.10"
    std::string homepage;    // for metadata.toml
    bool clear_env = false;  // [buildpack] clear-env: no <platform>/env
    // The buildpack's directory inside the builder; "" →
    // `<buildpacks_path>/<esc(id)>/<version>`.
    std::string dir;
    // buildpack.toml `[buildpack] sbom-formats` (media types). An SBOM file
    // of another type fails the build, as in the reference. nullopt: not
    // known (the caller did not read it) — the declaration is not checked.
    std::optional<std::vector<std::string>> sbom_formats;
};

// One `requirements` of the resolved plan: its name and its [metadata] table as
// TOML text ("" when it has none).
struct BuildRequire {
    std::string name;
    std::string metadata_toml;
    bool operator==(const BuildRequire&) const = default;
};
// One entry of the resolved plan (plan.toml `[[entries]]`): the ids of the
// buildpacks providing it and every requirement of it.
struct BuildPlanEntry {
    std::vector<std::string> providers;
    std::vector<BuildRequire> requirements;
    bool operator==(const BuildPlanEntry&) const = default;
};

// The run image's target, for CNB_TARGET_* (Buildpack API ≥0.10): OS and
// ARCH always, the others only when non-empty.
struct BuildTarget {
    std::string os = "linux";
    std::string arch;
    std::string arch_variant;
    std::string distro_name;
    std::string distro_version;
};

// What the runner must do for one bin/build.
struct BuildpackInvocation {
    std::string buildpack;          // "id@version", for messages
    std::vector<std::string> argv;  // container paths
    std::vector<std::string> env;   // exactly this environment, "K=V"
    std::string cwd;                // the app dir (container path)
    // A host directory to make visible at `plan_container_dir` (it holds
    // the plan file).
    std::string plan_host_dir;
    std::string plan_container_dir;
};
// Returns the exit status (128+N for a signal) or an Error when the
// buildpack could not be run at all.
using BuildpackRunner = std::function<base::Result<int>(const BuildpackInvocation&)>;

struct BuildRequest {
    std::vector<BuildGroupEntry> group;
    std::vector<BuildPlanEntry> plan;
    // Host directories.
    std::string layers_dir;        // bound at `layers_path`
    std::string platform_dir;      // its env/ is the user's build env; "" → none
    std::string build_config_dir;  // the builder's /cnb/build-config; "" → none
    std::string scratch_dir;       // plan files go in fresh dirs here; "" → $TMPDIR
    // The builder image's environment ("K=V", with HOME set for the build
    // user); filtered to the allow-list of §3.5.
    std::vector<std::string> base_env;
    BuildTarget target;
    std::string exec_env = "production";  // CNB_EXEC_ENV (Buildpack API ≥0.12)
    std::string platform_api = "0.12";    // the metadata.toml `command` form
    // Paths inside the build container.
    std::string layers_path = "/layers";
    std::string app_path = "/workspace";
    std::string platform_path = "/platform";
    std::string buildpacks_path = "/cnb/buildpacks";
    std::string plan_parent_path = "/tmp";
    std::function<void(const std::string&)> warn;
};

struct BuiltLayer {
    std::string name;
    LayerTypes types;
    std::string metadata_toml;
};
struct BuiltBuildpack {
    std::string id;
    std::string version;
    std::vector<BuiltLayer> layers;  // the kept layers, in `<layer>.toml` order
    std::vector<std::string> unmet;
    std::string store_metadata_toml;  // store.toml [metadata] ("" when none)
};

struct BuildResult {
    // Set when a buildpack exited non-zero (the reference's exit 51); the
    // buildpacks after it did not run and metadata.toml was not written.
    bool failed = false;
    std::string failed_buildpack;
    int failed_status = 0;
    std::vector<BuiltBuildpack> buildpacks;  // those that ran, in order
    BuildMetadata metadata;                  // what metadata.toml holds
    std::vector<BuildPlanEntry> remaining_plan;
    // The shared build env after the last buildpack (layers' build env).
    EnvMap final_env;
};

base::Result<BuildResult> run_build(const BuildRequest& request, const BuildpackRunner& runner);

// The plan file a buildpack receives (`[[entries]] name, [entries.metadata]`)
// for the requirements given.
base::Result<std::string> render_buildpack_plan(const std::vector<BuildRequire>& requirements);

// The real runner: each bin/build runs in the builder rootfs through
// ns::Launcher::run (in this process, which must be single-threaded) as the
// builder's numeric user, with exactly the invocation's env, cwd the app dir,
// the app, layers and cache dirs bound writable at /workspace, /layers,
// /cache and the platform dir read-only at /platform, a fresh tmpfs at the
// plan's parent (/tmp) and the plan dir read-only in it.
struct BuildContainer {
    ns::Rootfs rootfs;
    std::string user;  // "CNB_USER_ID:CNB_GROUP_ID"
    std::string app_dir;
    std::string layers_dir;
    std::string cache_dir;     // "" → no /cache
    std::string platform_dir;  // "" → no /platform
    std::string name = "cnb-build";
    std::string user_namespace;  // ContainerSpec::user_namespace
    ns::NetworkMode network = ns::NetworkMode::Host;
    std::function<void(const std::string&)> warn;
};
BuildpackRunner launcher_runner(BuildContainer container);

}  // namespace locald::cnb
