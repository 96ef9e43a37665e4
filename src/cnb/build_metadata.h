// cnb/build_metadata.h — the files a buildpack writes during build and the
// file the build leaves for the launcher: `<layers>/<esc(id)>/<layer>.toml`,
// `launch.toml`, `build.toml`, `store.toml` and `<layers>/config/metadata.toml`
// (spec notes §3.2, §3.3, §3.6–3.8).
//
// Contract: every input is buildpack- or image-written and untrusted;
// parsers never throw and a malformed file is an InvalidArgument error
// naming `file:line` (when toml++ knows it), the key, and what was expected
// — including the Buildpack API rules (a string `command` or a `direct` key
// in API ≥0.9, an array `command` before it, `launch =` outside `[types]`).
// Free-form `[metadata]` tables are carried as TOML text. Rendering is
// deterministic (processes sorted by type).
// Depends on base only (toml++ is private).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "cnb/buildpack.h"

namespace locald::cnb {

// `<layer>.toml`: `[types]` and `[metadata]`.
struct LayerTypes {
    bool launch = false;
    bool build = false;
    bool cache = false;
    bool any() const { return launch || build || cache; }
    bool operator==(const LayerTypes&) const = default;
};
struct LayerFile {
    LayerTypes types;
    std::string metadata_toml;  // the [metadata] table as TOML text ("" when absent)
};
base::Result<LayerFile> parse_layer_toml(std::string_view text, std::string_view file);

struct Process {
    std::string type;
    std::vector<std::string> command;  // never empty
    std::vector<std::string> args;
    bool direct = true;  // API ≥0.9 always; before, the `direct` key (default false: shell)
    bool is_default = false;
    std::string working_dir;  // "" → the app dir
    std::string buildpack_id;
    std::vector<std::string> exec_env;  // API ≥0.12; empty = every exec env
    bool operator==(const Process&) const = default;
};
struct Label {
    std::string key;
    std::string value;
    bool operator==(const Label&) const = default;
};
struct Slice {
    std::vector<std::string> paths;
    bool operator==(const Slice&) const = default;
};

// `launch.toml` of one buildpack of Buildpack API `api`.
struct LaunchFile {
    std::vector<Process> processes;  // buildpack_id filled from the caller's `buildpack_id`
    std::vector<Label> labels;
    std::vector<Slice> slices;
    std::vector<std::string> warnings;  // e.g. working-dir ignored before API 0.8
};
base::Result<LaunchFile> parse_launch_toml(std::string_view text, std::string_view file,
                                           ApiVersion api, std::string_view buildpack_id);

// A process type: letters, digits, `.`, `_`, `-` (it becomes a file name
// under /cnb/process).
base::Result<void> validate_process_type(std::string_view type);

// `build.toml`: the `[[unmet]] name` entries (legacy `[[bom]]` is ignored).
struct BuildFile {
    std::vector<std::string> unmet;
};
base::Result<BuildFile> parse_build_toml(std::string_view text, std::string_view file);

// `store.toml`: its `[metadata]` table as TOML text ("" when absent).
base::Result<std::string> parse_store_toml(std::string_view text, std::string_view file);

// `<layers>/config/metadata.toml`.
struct MetadataBuildpack {
    std::string id;
    std::string version;
    std::string api;
    std::string homepage;
    bool operator==(const MetadataBuildpack&) const = default;
};
struct BuildMetadata {
    std::vector<MetadataBuildpack> buildpacks;  // group order
    std::vector<Process> processes;             // sorted by type; is_default always false
    std::string default_process;                // buildpack-default-process-type
    std::vector<Label> labels;
    std::vector<Slice> slices;
    bool operator==(const BuildMetadata&) const = default;
};
// For Platform API < 0.10 `command` is written as a string and command[1:]
// moves to the front of `args` (lifecycle launch.WithPlatformAPI).
std::string render_metadata_toml(const BuildMetadata& metadata, ApiVersion platform_api);
// Reads both `command` forms (a string is one element).
base::Result<BuildMetadata> parse_metadata_toml(std::string_view text, std::string_view file);

// Merges the buildpacks' processes in group order (lifecycle processMap):
// keyed by type, the later buildpack wins; the last `default = true` sets
// the default; a later non-default process of the default's type clears it
// (a warning). Returns the list sorted by type with `is_default` stripped.
struct MergedProcesses {
    std::vector<Process> processes;
    std::string default_process;
};
MergedProcesses merge_processes(const std::vector<std::vector<Process>>& per_buildpack,
                                const std::function<void(const std::string&)>& warn);

}  // namespace locald::cnb
