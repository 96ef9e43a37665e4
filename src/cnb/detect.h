// cnb/detect.h — the CNB detect phase: order expansion, bin/detect runs,
// the group verdict and the build-plan resolution, group.toml and plan.toml.
//
// Contract (spec notes §2; lifecycle phase/detector.go):
//  - `detect(order, lookup, runner, options)` expands the order depth-first
//    (composite buildpacks, `optional` entries "repeat the group without
//    it", de-duplication by buildpack id across a group), runs each
//    buildpack's detect at most once per id@version (through the injected
//    `runner`), decides each group (exit 0 pass, 100 fail, anything else an
//    error; a non-optional fail/error fails the group; a group with no
//    passing buildpack fails), and resolves the plan of the first group
//    that passes exactly as the reference does (options = the top-level
//    section then each [[or]]; only the last option of an optional
//    buildpack may drop it; trials depth-first, first element outermost;
//    unmet requires and unused provides fail the trial or drop an optional
//    buildpack and retry). The result's `exit_code` is the detector's: 0,
//    20 (no group passed) or 21 (no group passed and some buildpack erred).
//  - Errors (Result) are reserved for what the reference treats as fatal:
//    a buildpack of the order missing from the builder, a malformed
//    buildpack.toml, an unsupported Buildpack API, a runner failure that
//    is not the buildpack's (the launcher could not set up the container).
//  - The runner is an interface so the resolution is table-testable; the
//    real one, `launcher_detect_runner`, runs `<bp>/bin/detect /platform
//    <plan>` as CNB_USER_ID:CNB_GROUP_ID in the builder rootfs through
//    ns::Launcher::run with exactly the environment the spec gives it.
//  - Not run: image extensions and exec-env filtering (Platform 0.15).
//    Detects run one after another, not in parallel.
// Depends on base, ns (toml++ private).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "cnb/buildpack.h"
#include "ns/launcher.h"

namespace locald::cnb {

// A `[[requires]]` entry: its name and its [requires.metadata] as TOML text
// ("" when it has none), kept verbatim for plan.toml.
struct Require {
    std::string name;
    std::string metadata_toml;
    bool operator==(const Require&) const = default;
};

struct PlanSection {
    std::vector<std::string> provides;
    std::vector<Require> requirements;
};

// What one bin/detect wrote: the top-level section and its [[or]] alternatives.
struct DetectPlan {
    PlanSection primary;
    std::vector<PlanSection> alternatives;
};

// Parses a detect plan. Errors (the buildpack then counts as erred, as in
// the reference): invalid TOML, wrong types, a `requires` with a top-level
// `version` key ("use metadata.version"), or with both `version` and
// `metadata.version`.
base::Result<DetectPlan> parse_detect_plan(std::string_view text, std::string_view file);

// A buildpack that passed detect, as plan resolution sees it.
struct Detected {
    GroupRef ref;  // id, version, optional
    std::string api;
    std::string homepage;
    DetectPlan plan;
};

struct GroupMember {
    std::string id;
    std::string version;
    std::string api;
    std::string homepage;
    bool operator==(const GroupMember&) const = default;
};

struct PlanProvider {
    std::string id;
    std::string version;
    bool operator==(const PlanProvider&) const = default;
};

// One `[[entries]]` of plan.toml: every provider of `name` and every
// require of it, in group order.
struct PlanEntry {
    std::string name;
    std::vector<PlanProvider> providers;
    std::vector<Require> requirements;
};

struct Resolution {
    std::vector<GroupMember> group;
    std::vector<PlanEntry> plan;  // in order of each name's first provide/require
    int trial = 0;                // the 1-based number of the trial that resolved
};

// §2.5 on the passing buildpacks of one group, in group order. `resolved`
// false means the group fails; `log` has the reference's debug lines
// ("Resolving plan... (try #N)", "fail: B@v1 requires dep1", "skip: …").
struct ResolveOutcome {
    bool resolved = false;
    Resolution resolution;
    std::vector<std::string> log;
};
ResolveOutcome resolve_plan(const std::vector<Detected>& passing);

// One bin/detect run: the exit code (-1: it could not be executed), its
// combined stdout+stderr and the plan file it left.
struct DetectRun {
    int code = 0;
    std::string output;
    std::string plan;
};

// Runs the detect of one (non-composite) buildpack. An Error aborts the
// whole detection; a buildpack that cannot be executed is {code = -1}.
using DetectRunner = std::function<base::Result<DetectRun>(const BuildpackDescriptor&)>;
// Finds id@version in the builder (load_buildpack on the rootfs, in the real thing).
using BuildpackLookup =
    std::function<base::Result<BuildpackDescriptor>(std::string_view id, std::string_view version)>;

struct DetectOptions {
    // The run image's target; all fields empty = unknown, matches anything.
    Target run_target;
    // Platform API ≥ 0.12 target matching: a non-optional buildpack whose
    // targets do not match errs without running; an optional one still runs.
    bool match_targets = true;
};

struct DetectOutcome {
    int exit_code = 20;     // 0 pass, 20 fail, 21 a buildpack erred
    Resolution resolution;  // when exit_code == 0
    std::vector<std::string> log;
    // Every group that reached the verdict, as "id@version" lists, in order
    // (the reference's expansion sequence; tests compare against it).
    std::vector<std::vector<std::string>> tried;
    // Each buildpack's run, by "id@version" (memoised: at most one run each).
    std::map<std::string, DetectRun> runs;
};

base::Result<DetectOutcome> detect(const Order& order, const BuildpackLookup& lookup,
                                   const DetectRunner& runner, const DetectOptions& options = {});

// Does a buildpack's target list admit `run`? (§2.6: empty fields are
// wildcards; distros only checked when both sides name one.)
bool targets_match(const std::vector<Target>& buildpack_targets, const Target& run);

// group.toml ([[group]] id, version, api, homepage) and plan.toml
// ([[entries]] [[entries.providers]] id, version; [[entries.requires]]
// name, metadata) as the spec writes them.
std::string group_toml(const Resolution& resolution);
std::string plan_toml(const Resolution& resolution);
// Writes both atomically (0644) at the given host paths.
base::Result<void> write_detect_outputs(const Resolution& resolution, const std::string& group_path,
                                        const std::string& plan_path);

// The environment of one bin/detect (§2.3/§3.5 steps 1 and 3): the builder
// image's env filtered to the build whitelist, HOME from the rootfs's
// /etc/passwd entry of `uid` (when present), then — unless the buildpack has
// clear-env — `<platform>/env/*` (read on the host, `platform_dir`), then
// `/cnb/build-config/env/*` of the rootfs (unsuffixed = default), then the
// CNB_* variables of its API. Sorted by name.
struct DetectEnvInputs {
    int rootfs_fd = -1;
    std::string platform_dir;  // host path of <platform> ("" → no platform env)
    std::vector<std::string> image_env;
    uint32_t uid = 0;
    Target run_target;  // CNB_TARGET_* (os/arch always, the rest when non-empty)
    std::string exec_env = "production";
};
base::Result<std::vector<std::string>> detect_environment(const BuildpackDescriptor& bp,
                                                          const DetectEnvInputs& inputs,
                                                          std::string_view plan_path);

// The real runner's setup: host directories bound into the builder rootfs
// (app → /workspace rw, layers → /layers rw, platform → /platform ro, cache
// → /cache rw when set), a fresh tmpfs /tmp holding each buildpack's own
// empty plan file, user CNB_USER_ID:CNB_GROUP_ID, cwd /workspace.
struct LauncherDetectConfig {
    std::string rootfs;  // host directory of the unpacked builder image
    std::vector<std::string> image_env;
    uint32_t uid = 0;
    uint32_t gid = 0;
    std::string app_dir;
    std::string layers_dir;
    std::string platform_dir;
    std::string cache_dir;  // "" → not bound
    Target run_target;
    std::string exec_env = "production";
    // Host scratch for plan files and captured output; "" → a private temp
    // dir per run, removed after it.
    std::string scratch_dir;
    ns::LaunchOptions launch;
};
// The caller must be single-threaded (ns::Launcher::run's rule): the run's
// stdout and stderr are captured by pointing this process's fds 1 and 2 at
// a file for the duration of the run.
DetectRunner launcher_detect_runner(LauncherDetectConfig config);

// The detect phase as the platform runs it (lifecycle `detector`):
//  - the order: `order_path` (a host file) when set; else
//    `<layers>/order.toml` when it exists (CNB_ORDER_PATH's default); else
//    the builder's /cnb/order.toml;
//  - merged with the builder's /cnb/system.toml when it has one;
//  - buildpacks looked up in the builder rootfs (load_buildpack);
//  - detect runs through launcher_detect_runner(`run`);
//  - on success, `<layers>/group.toml` and `<layers>/plan.toml` (written
//    atomically; a link planted there by a buildpack is replaced, never
//    followed). A previous group.toml/plan.toml is left alone on failure.
struct DetectPhase {
    LauncherDetectConfig run;
    std::string order_path;
};
base::Result<DetectOutcome> run_detect_phase(const DetectPhase& phase,
                                             const DetectOptions& options = {});

}  // namespace locald::cnb
