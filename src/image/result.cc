#include "image/result.h"

namespace locald::image {

namespace {

base::Json strings_json(const std::vector<std::string>& values) {
    base::Json out = base::Json::array();
    for (const auto& value : values) {
        out.push_back(value);
    }
    return out;
}

base::Result<std::vector<std::string>> strings_from(const base::Json& object,
                                                    std::string_view key) {
    std::vector<std::string> out;
    const base::Json* list = object.find(key);
    if (list == nullptr || list->is_null()) {
        return out;
    }
    if (!list->is_array()) {
        return base::invalid_argument("`{}` must be an array of strings", key);
    }
    for (const auto& item : list->as_array()) {
        if (!item.is_string()) {
            return base::invalid_argument("`{}` must be an array of strings", key);
        }
        out.push_back(item.as_string());
    }
    return out;
}

std::string string_or_empty(const base::Json& object, std::string_view key) {
    const base::Json* value = object.find(key);
    return value && value->is_string() ? value->as_string() : std::string();
}

}  // namespace

base::Json to_json(const PreparedInfo& prepared) {
    base::Json mounts = base::Json::array();
    for (const auto& mount : prepared.rootfs.mounts) {
        mounts.push_back(base::Json::object({{"type", mount.type},
                                             {"source", mount.source},
                                             {"options", strings_json(mount.options)}}));
    }
    const ImageDefaults& d = prepared.defaults;
    return base::Json::object({
        {"reference", prepared.reference},
        {"digest", prepared.image_digest},
        {"defaults", base::Json::object({{"entrypoint", strings_json(d.entrypoint)},
                                         {"cmd", strings_json(d.cmd)},
                                         {"env", strings_json(d.env)},
                                         {"working_dir", d.working_dir},
                                         {"user", d.user}})},
        {"rootfs", base::Json::object({{"path", prepared.rootfs.path}, {"mounts", mounts}})},
        {"container_dir", prepared.container_dir},
    });
}

base::Result<PreparedInfo> prepared_from_json(const base::Json& json) {
    if (!json.is_object()) {
        return base::invalid_argument("prepared image: expected an object");
    }
    PreparedInfo info;
    info.reference = string_or_empty(json, "reference");
    info.image_digest = string_or_empty(json, "digest");
    info.container_dir = string_or_empty(json, "container_dir");
    if (const base::Json* d = json.find("defaults"); d && d->is_object()) {
        info.defaults.entrypoint = TRY(strings_from(*d, "entrypoint"));
        info.defaults.cmd = TRY(strings_from(*d, "cmd"));
        info.defaults.env = TRY(strings_from(*d, "env"));
        info.defaults.working_dir = string_or_empty(*d, "working_dir");
        info.defaults.user = string_or_empty(*d, "user");
    }
    const base::Json* rootfs = json.find("rootfs");
    if (rootfs == nullptr || !rootfs->is_object()) {
        return base::invalid_argument("prepared image: missing `rootfs`");
    }
    info.rootfs.path = string_or_empty(*rootfs, "path");
    if (info.rootfs.path.empty() || info.rootfs.path.front() != '/') {
        return base::invalid_argument("prepared image: `rootfs.path` must be absolute");
    }
    if (const base::Json* mounts = rootfs->find("mounts"); mounts && mounts->is_array()) {
        for (const auto& m : mounts->as_array()) {
            if (!m.is_object()) {
                return base::invalid_argument("prepared image: a rootfs mount is not an object");
            }
            ns::RootfsMount mount;
            mount.type = string_or_empty(m, "type");
            mount.source = string_or_empty(m, "source");
            mount.options = TRY(strings_from(m, "options"));
            info.rootfs.mounts.push_back(std::move(mount));
        }
    }
    return info;
}

}  // namespace locald::image
