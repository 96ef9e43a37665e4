// cnb/provision.h — the Dump Layer platform: one `build = {…}` service built
// with locald's own lifecycle and its launch layers and app "dumped" to a
// host directory, so the process can run on the host (spec notes §4, §7).
//
// Contract: `provision` (single-threaded caller: it forks into user
// namespaces and runs every phase through ns::Launcher::run)
//  1. resolves the builder in the local image store, pulling it when it is
//     missing (never with `offline`), and flattens it once per manifest
//     digest into `<data>/builds/builders/<digest hex>/rootfs` (detection
//     reads descriptors from a plain directory);
//  2. reads the builder's CNB_USER_ID/CNB_GROUP_ID and labels;
//  3. computes the provision key (builder digest, buildpacks, build env,
//     platform API, and a fingerprint of the app dir: relative path, size,
//     mode and mtime of every entry); when `<dump>/provision.json` has the
//     same key the dump is reused and nothing runs;
//  4. lays out `<data>/builds/<project>/<service>/{workspace,layers,platform,
//     cache,scratch}`: the workspace is a fresh copy of the app dir without
//     `.git` and `.locald`, owned by the build user; platform/env/<K> holds
//     `build.env`; a `buildpacks = […]` list becomes the only order group;
//  5. runs detect (`run_detect_phase`) then build (`run_build` with the
//     launcher runner), as the builder's user in the builder rootfs;
//  6. dumps the launch = true layers (dir and `<layer>.toml`), the layers'
//     `config/metadata.toml` and the built workspace into
//     `<data>/provisioned/<project>/<service>/{layers,app}` plus
//     `provision.json`, built in a temp dir beside it and renamed over the
//     old one. The dump's files belong to the invoking user (copied as the
//     user namespace's root), without setuid/setgid bits.
// Files the build user wrote belong to subordinate ids: every copy and
// removal of them runs as the container's root (layers::run_as_container_root
// / remove_tree). Errors name the service, the phase, the buildpack and the
// tail of its output. Depends on base, oci, layers, ns and the cnb phases.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "cnb/launch.h"

namespace locald::cnb {

// Bumped when the dump layout or the key's inputs change.
inline constexpr int kProvisionFormat = 1;

struct ProvisionRequest {
    std::string project;   // [A-Za-z0-9_.-]+ (a path component)
    std::string service;   // [A-Za-z0-9_-]+
    std::string app_dir;   // the project dir: the app source
    std::string data_dir;  // base::Paths::data
    std::string builder;   // image reference
    // "id" or "id@version" ("id" takes the version the builder lists);
    // empty → the builder's order.
    std::vector<std::string> buildpacks;
    std::vector<std::pair<std::string, std::string>> env;  // → <platform>/env/<K>
    bool offline = false;                                  // never pull
    bool force = false;                                    // rebuild even when the dump is current
    // Progress: phase is "builder", "detect", "build", "dump" or "reuse".
    std::function<void(std::string_view phase, std::string_view message)> on_progress;
    std::function<void(const std::string&)> warn;
};

struct ProvisionResult {
    bool reused = false;
    std::string builder_digest;
    std::string key;                 // the provision key (sha256 hex)
    std::vector<std::string> group;  // "id@version", detected (or recorded) group
    std::string dump_dir;            // <data>/provisioned/<project>/<service>
    std::string layers_dir;          // <dump>/layers
    std::string app_dir;             // <dump>/app
    // The builder as the process's container (build mode "container"): its
    // flattened rootfs, its config Env and the user the build ran as
    // (CNB_USER_ID:CNB_GROUP_ID, or 0:0 without a subordinate id range).
    // Filled by `provision` (also when reused), not by read_provisioned.
    std::string builder_rootfs;
    std::vector<std::string> builder_env;
    uint32_t uid = 0;
    uint32_t gid = 0;
};

base::Result<ProvisionResult> provision(const ProvisionRequest& request);

// Where a service's dump lives and whether it is there (provision.json read
// back; NotFound when missing).
std::string dump_dir(const std::string& data_dir, const std::string& project,
                     const std::string& service);
base::Result<ProvisionResult> read_provisioned(const std::string& data_dir,
                                               const std::string& project,
                                               const std::string& service);

// The process of a dump on the host: compute_launch in host mode over
// `<dump>/layers` (launch layers only) with the app at `<dump>/app`.
// `base_env` is the environment the process would get without buildpacks
// (the host service env: host env, .env, [env], PORT …); `process_type` ""
// = the default; `user_args` the service's `command` when set.
base::Result<LaunchPlan> dump_launch(const ProvisionResult& dump, const std::string& process_type,
                                     const std::vector<std::string>& user_args,
                                     const std::vector<std::string>& base_env);

// The process of a dump in a container (build mode "container", spec notes
// §7 "best": paths identical): compute_launch in container form over
// `<dump>/layers` (launch layers only) as seen at /layers, the app at
// /workspace, over the builder's config Env. The caller binds the dump there
// and layers its service env on top.
base::Result<LaunchPlan> container_launch(const ProvisionResult& dump,
                                          const std::string& process_type,
                                          const std::vector<std::string>& user_args);

}  // namespace locald::cnb
