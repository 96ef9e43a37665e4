// ns/spec.cc — JSON form of ContainerSpec (for `locald __launch SPEC.json`).
#include "ns/spec.h"

#include <charconv>
#include <cmath>

namespace locald::ns {

using base::Json;
using base::Result;

namespace {

Json strings(const std::vector<std::string>& values) {
    Json out = Json::array();
    for (const auto& value : values) {
        out.push_back(value);
    }
    return out;
}

Result<std::vector<std::string>> get_strings(const Json& object, std::string_view key) {
    std::vector<std::string> out;
    const Json* value = object.find(key);
    if (value == nullptr || value->is_null()) {
        return out;
    }
    if (!value->is_array()) {
        return base::invalid_argument("`{}` must be an array of strings", key);
    }
    for (const auto& item : value->as_array()) {
        if (!item.is_string()) {
            return base::invalid_argument("`{}` must be an array of strings", key);
        }
        out.push_back(item.as_string());
    }
    return out;
}

Result<std::string> opt_string(const Json& object, std::string_view key, std::string fallback) {
    const Json* value = object.find(key);
    if (value == nullptr || value->is_null()) {
        return fallback;
    }
    if (!value->is_string()) {
        return base::invalid_argument("`{}` must be a string", key);
    }
    return value->as_string();
}

Result<bool> opt_bool(const Json& object, std::string_view key, bool fallback) {
    const Json* value = object.find(key);
    if (value == nullptr || value->is_null()) {
        return fallback;
    }
    if (!value->is_bool()) {
        return base::invalid_argument("`{}` must be a boolean", key);
    }
    return value->as_bool();
}

Result<std::optional<int64_t>> opt_int(const Json& object, std::string_view key) {
    const Json* value = object.find(key);
    if (value == nullptr || value->is_null()) {
        return std::optional<int64_t>();
    }
    if (!value->is_int()) {
        return base::invalid_argument("`{}` must be an integer", key);
    }
    return std::optional<int64_t>(value->as_int());
}

const char* kind_name(MountKind kind) {
    switch (kind) {
        case MountKind::Bind:
            return "bind";
        case MountKind::Volume:
            return "volume";
        case MountKind::Tmpfs:
            return "tmpfs";
    }
    return "bind";
}

}  // namespace

Json to_json(const ContainerSpec& spec) {
    Json out = Json::object();
    out.set("name", spec.name);
    Json rootfs = Json::object();
    rootfs.set("path", spec.rootfs.path);
    Json rootfs_mounts = Json::array();
    for (const auto& mount : spec.rootfs.mounts) {
        rootfs_mounts.push_back(Json::object(
            {{"type", mount.type}, {"source", mount.source}, {"options", strings(mount.options)}}));
    }
    rootfs.set("mounts", std::move(rootfs_mounts));
    out.set("rootfs", std::move(rootfs));
    out.set("args", strings(spec.args));
    out.set("env", strings(spec.env));
    out.set("exact_env", spec.exact_env);
    out.set("cwd", spec.cwd);
    out.set("user", spec.user);
    out.set("additional_groups", strings(spec.additional_groups));
    out.set("hostname", spec.hostname);
    Json mounts = Json::array();
    for (const auto& mount : spec.mounts) {
        mounts.push_back(Json::object({{"kind", kind_name(mount.kind)},
                                       {"source", mount.source},
                                       {"destination", mount.destination},
                                       {"read_only", mount.read_only},
                                       {"options", strings(mount.options)}}));
    }
    out.set("mounts", std::move(mounts));
    out.set("network", spec.network == NetworkMode::None ? "none" : "host");
    out.set("read_only_rootfs", spec.read_only_rootfs);
    Json resources = Json::object();
    if (spec.resources.memory_bytes) {
        resources.set("memory_bytes", *spec.resources.memory_bytes);
    }
    if (spec.resources.cpus) {
        resources.set("cpus", *spec.resources.cpus);
    }
    if (spec.resources.pids) {
        resources.set("pids", *spec.resources.pids);
    }
    if (!spec.resources.cgroup_parent.empty()) {
        resources.set("cgroup_parent", spec.resources.cgroup_parent);
    }
    out.set("resources", std::move(resources));
    out.set("tty", spec.tty);
    if (spec.capabilities) {
        out.set("capabilities", strings(*spec.capabilities));
    }
    out.set("seccomp", spec.seccomp);
    Json rlimits = Json::array();
    for (const auto& rlimit : spec.rlimits) {
        // uint64 does not fit JSON ints for "unlimited": -1 stands for RLIM_INFINITY.
        auto encode = [](uint64_t v) -> int64_t {
            return v == UINT64_MAX ? -1 : static_cast<int64_t>(v);
        };
        rlimits.push_back(Json::object(
            {{"name", rlimit.name}, {"soft", encode(rlimit.soft)}, {"hard", encode(rlimit.hard)}}));
    }
    out.set("rlimits", std::move(rlimits));
    out.set("provide_etc_files", spec.provide_etc_files);
    out.set("state_dir", spec.state_dir);
    out.set("seccomp_cache_dir", spec.seccomp_cache_dir);
    if (!spec.user_namespace.empty()) {
        out.set("user_namespace", spec.user_namespace);
    }
    return out;
}

Result<ContainerSpec> spec_from_json(const Json& json) {
    if (!json.is_object()) {
        return base::invalid_argument("a container spec must be a JSON object");
    }
    ContainerSpec spec;
    spec.name = TRY(opt_string(json, "name", ""));
    const Json* rootfs = json.find("rootfs");
    if (rootfs == nullptr || !rootfs->is_object()) {
        return base::invalid_argument("`rootfs` must be an object with a `path`");
    }
    spec.rootfs.path = TRY(rootfs->get_string("path"));
    if (const Json* mounts = rootfs->find("mounts"); mounts && mounts->is_array()) {
        for (const auto& item : mounts->as_array()) {
            RootfsMount mount;
            mount.type = TRY(item.get_string("type"));
            mount.source = TRY(opt_string(item, "source", ""));
            mount.options = TRY(get_strings(item, "options"));
            spec.rootfs.mounts.push_back(std::move(mount));
        }
    }
    spec.args = TRY(get_strings(json, "args"));
    spec.env = TRY(get_strings(json, "env"));
    spec.exact_env = TRY(opt_bool(json, "exact_env", false));
    spec.cwd = TRY(opt_string(json, "cwd", "/"));
    spec.user = TRY(opt_string(json, "user", ""));
    spec.additional_groups = TRY(get_strings(json, "additional_groups"));
    spec.hostname = TRY(opt_string(json, "hostname", ""));
    if (const Json* mounts = json.find("mounts"); mounts && mounts->is_array()) {
        for (const auto& item : mounts->as_array()) {
            Mount mount;
            std::string kind = TRY(opt_string(item, "kind", "bind"));
            if (kind == "bind") {
                mount.kind = MountKind::Bind;
            } else if (kind == "volume") {
                mount.kind = MountKind::Volume;
            } else if (kind == "tmpfs") {
                mount.kind = MountKind::Tmpfs;
            } else {
                return base::invalid_argument("unknown mount kind `{}`", kind);
            }
            mount.source = TRY(opt_string(item, "source", ""));
            mount.destination = TRY(item.get_string("destination"));
            mount.read_only = TRY(opt_bool(item, "read_only", false));
            mount.options = TRY(get_strings(item, "options"));
            spec.mounts.push_back(std::move(mount));
        }
    }
    std::string network = TRY(opt_string(json, "network", "host"));
    if (network == "host") {
        spec.network = NetworkMode::Host;
    } else if (network == "none") {
        spec.network = NetworkMode::None;
    } else {
        return base::invalid_argument("network must be `host` or `none`, not `{}`", network);
    }
    spec.read_only_rootfs = TRY(opt_bool(json, "read_only_rootfs", false));
    if (const Json* resources = json.find("resources"); resources && resources->is_object()) {
        spec.resources.memory_bytes = TRY(opt_int(*resources, "memory_bytes"));
        spec.resources.pids = TRY(opt_int(*resources, "pids"));
        spec.resources.cgroup_parent = TRY(opt_string(*resources, "cgroup_parent", ""));
        if (!spec.resources.cgroup_parent.empty() && spec.resources.cgroup_parent[0] != '/') {
            return base::invalid_argument("resources.cgroup_parent `{}` must be absolute",
                                          spec.resources.cgroup_parent);
        }
        if (const Json* cpus = resources->find("cpus"); cpus && cpus->is_number()) {
            spec.resources.cpus = cpus->as_double();
        }
    }
    spec.tty = TRY(opt_bool(json, "tty", false));
    if (json.find("capabilities") != nullptr && !json.find("capabilities")->is_null()) {
        spec.capabilities = TRY(get_strings(json, "capabilities"));
    }
    spec.seccomp = TRY(opt_bool(json, "seccomp", true));
    if (const Json* rlimits = json.find("rlimits"); rlimits && rlimits->is_array()) {
        for (const auto& item : rlimits->as_array()) {
            Rlimit rlimit;
            rlimit.name = TRY(item.get_string("name"));
            auto decode = [](int64_t v) -> uint64_t {
                return v < 0 ? UINT64_MAX : static_cast<uint64_t>(v);
            };
            rlimit.soft = decode(TRY(item.get_int("soft")));
            rlimit.hard = decode(TRY(item.get_int("hard")));
            spec.rlimits.push_back(std::move(rlimit));
        }
    }
    spec.provide_etc_files = TRY(opt_bool(json, "provide_etc_files", true));
    spec.state_dir = TRY(opt_string(json, "state_dir", ""));
    spec.seccomp_cache_dir = TRY(opt_string(json, "seccomp_cache_dir", ""));
    spec.user_namespace = TRY(opt_string(json, "user_namespace", ""));
    if (!spec.user_namespace.empty() && spec.user_namespace[0] != '/') {
        return base::invalid_argument("user_namespace `{}` must be an absolute path",
                                      spec.user_namespace);
    }
    return spec;
}

Result<int64_t> parse_memory_size(std::string_view text) {
    if (text.empty()) {
        return base::invalid_argument("empty memory size");
    }
    int64_t multiplier = 1;
    char last = text.back();
    switch (last) {
        case 'b':
        case 'B':
            text.remove_suffix(1);
            break;
        case 'k':
        case 'K':
            multiplier = int64_t{1} << 10;
            text.remove_suffix(1);
            break;
        case 'm':
        case 'M':
            multiplier = int64_t{1} << 20;
            text.remove_suffix(1);
            break;
        case 'g':
        case 'G':
            multiplier = int64_t{1} << 30;
            text.remove_suffix(1);
            break;
        case 't':
        case 'T':
            multiplier = int64_t{1} << 40;
            text.remove_suffix(1);
            break;
        default:
            break;
    }
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size() || value <= 0) {
        return base::invalid_argument("`{}` is not a memory size (e.g. 512M, 2g)", text);
    }
    if (value > INT64_MAX / multiplier) {
        return base::invalid_argument("memory size `{}` is too large", text);
    }
    return value * multiplier;
}

}  // namespace locald::ns
