// cnb/buildpack.h — Cloud Native Buildpacks descriptors: buildpack.toml,
// the builder's order.toml, the builder image's labels and config env, and
// the lookup of a buildpack in a builder rootfs.
//
// Contract: every input here comes from an image and is attacker-controlled.
// Parsers never throw; a malformed file is an InvalidArgument error naming
// the file, the line (when toml++ reports one) and what was expected.
// Buildpack ids and versions are validated before they are used in a path
// (no `..`, no empty component, a restricted character set), and files in a
// rootfs are read through base/confined.h, so a symlink in the image cannot
// lead outside the rootfs. Supported Buildpack APIs: 0.7 to 0.12 (the range
// of lifecycle v0.21); anything else is an Unsupported error, the
// lifecycle's exit 12. Spec map: docs/modules/cnb.md.
// Depends on base only (toml++ is private).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace locald::cnb {

// "0.10" → {0, 10}. Ordered so `api >= ApiVersion{0, 8}` reads like the spec.
struct ApiVersion {
    int major = 0;
    int minor = 0;
    auto operator<=>(const ApiVersion&) const = default;
};
base::Result<ApiVersion> parse_api_version(std::string_view text);
bool buildpack_api_supported(ApiVersion api);

// One element of an order group: `[[order.group]] id, version, optional`.
struct GroupRef {
    std::string id;
    std::string version;
    bool optional = false;
    bool operator==(const GroupRef&) const = default;
};
using Group = std::vector<GroupRef>;
using Order = std::vector<Group>;

struct Distro {
    std::string name;
    std::string version;
    bool operator==(const Distro&) const = default;
};

// A buildpack target (`[[targets]]`) or the run image's target. Empty
// strings are wildcards when matching.
struct Target {
    std::string os;
    std::string arch;
    std::string variant;
    std::vector<Distro> distros;
    bool operator==(const Target&) const = default;
};

struct BuildpackDescriptor {
    std::string api;  // as written, e.g. "0.10"
    ApiVersion api_version;
    std::string id;
    std::string version;
    std::string name;
    std::string homepage;
    bool clear_env = false;
    std::vector<Target> targets;      // as declared ([[targets]])
    std::vector<std::string> stacks;  // [[stacks]] ids (deprecated since API 0.10)
    Order order;                      // non-empty for a composite buildpack
    // Filled by load_buildpack: the buildpack's directory inside the
    // builder (/cnb/buildpacks/<esc(id)>/<version>) and whether it has
    // bin/build (used for target inference).
    std::string dir;
    bool has_bin_build = false;

    bool composite() const { return !order.empty(); }
    // The targets detection matches against (spec: declared targets, else
    // inferred from [[stacks]], else os=linux when bin/build exists). An
    // empty result matches nothing; a Target with every field empty
    // matches anything.
    std::vector<Target> effective_targets() const;
};

// `id` must be non-empty, made of [A-Za-z0-9._/-], with no empty, `.` or
// `..` path component, and not one of the reserved ids (app, config,
// generated, sbom). `version` must be non-empty, without `/`, and not `.`
// or `..`.
base::Result<void> validate_id(std::string_view id);
base::Result<void> validate_version(std::string_view version);
// The spec's esc(id): every `/` replaced by `_`.
std::string escape_id(std::string_view id);

// `file` is only used in messages.
base::Result<BuildpackDescriptor> parse_buildpack_toml(std::string_view text,
                                                       std::string_view file);
// order.toml: `[[order]] [[order.group]] id, version, optional`. Versions
// must be concrete. `[[order-extensions]]` is rejected as Unsupported
// (locald does not run image extensions).
base::Result<Order> parse_order_toml(std::string_view text, std::string_view file);

// /cnb/system.toml (Platform API 0.15): system buildpacks run around every
// group — `[[system.pre.buildpacks]]` before, `[[system.post.buildpacks]]`
// after (id, version, optional).
struct SystemBuildpacks {
    Group pre;
    Group post;
};
base::Result<SystemBuildpacks> parse_system_toml(std::string_view text, std::string_view file);
// Each group becomes pre ++ group ++ post, leaving out a system buildpack
// whose id the group already has (lifecycle platform: system buildpacks
// never override the builder's or the user's choice).
Order merge_system_buildpacks(const Order& order, const SystemBuildpacks& system);

// The builder image's labels and config env, as the CNB platform needs them.
struct RunImageRef {
    std::string image;
    std::vector<std::string> mirrors;
};
struct BuilderInfo {
    uint32_t uid = 0;      // CNB_USER_ID (required, non-zero: buildpacks never run as root)
    uint32_t gid = 0;      // CNB_GROUP_ID (required)
    std::string stack_id;  // CNB_STACK_ID / io.buildpacks.stack.id, if any
    std::vector<RunImageRef> run_images;  // metadata.images[] else stack.runImage
    std::vector<std::pair<std::string, std::string>> buildpacks;  // metadata.buildpacks id, version
    std::string lifecycle_version;  // metadata.lifecycle.version (informational)
    std::string description;
};
// `labels` are the image config's Labels, `env` its Env ("K=V").
// io.buildpacks.builder.metadata is required (it is what makes an image a
// builder); its JSON errors name the label.
base::Result<BuilderInfo> parse_builder_config(const std::map<std::string, std::string>& labels,
                                               const std::vector<std::string>& env);

// The run image's target (§2.6): the image config's os/architecture/variant
// and the distro from its `io.buildpacks.base.distro.name`/`.version`
// labels; when those are missing, from `os_release` (the text of an
// /etc/os-release: ID and VERSION_ID) — pass the builder rootfs's, never the
// host's (pitfall 13: in host mode the host's would lie). "" skips it.
Target run_image_target(std::string_view os, std::string_view arch, std::string_view variant,
                        const std::map<std::string, std::string>& labels,
                        std::string_view os_release = "");

// Reads /cnb/buildpacks/<esc(id)>/<version>/buildpack.toml inside the rootfs
// `rootfs_fd` (confined), checks that the file's id and version are the ones
// asked for and that its API is supported, and fills `dir` and
// `has_bin_build`.
base::Result<BuildpackDescriptor> load_buildpack(int rootfs_fd, std::string_view id,
                                                 std::string_view version);
// Reads an order.toml at `path` inside the rootfs (default /cnb/order.toml).
base::Result<Order> load_order(int rootfs_fd, std::string_view path = "/cnb/order.toml");
// A regular file inside the rootfs, at most `max_bytes` (confined read).
base::Result<std::string> read_file_in_root(int rootfs_fd, std::string_view path,
                                            size_t max_bytes = 1 << 20);

}  // namespace locald::cnb
