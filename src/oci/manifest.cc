#include "oci/manifest.h"

#include <algorithm>

#include "base/json.h"
#include "oci/internal/codec.h"
#include "oci/media_types.h"

namespace locald::oci {

namespace {

using base::Json;

const char kSchema1Message[] =
    "Docker schema 1 manifests are not supported (deprecated since 2017, removed from "
    "registries): re-push the image with a current tool so it has a schema 2 or OCI manifest";

base::Result<Json> parse_document(std::string_view raw, size_t cap, std::string_view what) {
    if (raw.size() > cap) {
        return base::invalid_argument("{} is {} bytes, more than the {}-byte limit", what,
                                      raw.size(), cap);
    }
    auto json = Json::parse(raw, {.max_bytes = cap, .max_depth = 64});
    if (!json) {
        return base::invalid_argument("{} is not valid JSON: {}", what, json.error().message());
    }
    if (!json->is_object()) {
        return base::invalid_argument("{} must be a JSON object", what);
    }
    return json.release_value();
}

// schemaVersion: 1 → Unsupported; anything but 2 → InvalidArgument.
base::Result<int> schema_version(const Json& json, std::string_view what) {
    const Json* version = json.find("schemaVersion");
    if (version == nullptr || !version->is_int()) {
        return base::invalid_argument("{}: `schemaVersion` is missing or not an integer", what);
    }
    if (version->as_int() == 1) {
        return base::unsupported("{}: {}", what, kSchema1Message);
    }
    if (version->as_int() != 2) {
        return base::invalid_argument("{}: unsupported schemaVersion {}", what, version->as_int());
    }
    return 2;
}

base::Result<std::string> optional_string(const Json& json, std::string_view key,
                                          std::string_view what) {
    const Json* value = json.find(key);
    if (value == nullptr || value->is_null()) {
        return std::string();
    }
    if (!value->is_string()) {
        return base::invalid_argument("{}: `{}` must be a string", what, key);
    }
    return value->as_string();
}

// The body's mediaType must agree with the type the document was described
// or served as (CVE-2021-41190: a document must not be read as both).
base::Result<std::string> reconcile_media_type(const Json& json, std::string_view hint,
                                               std::string_view what) {
    std::string body = TRY(optional_string(json, "mediaType", what));
    std::string hint_base = media_types::base_type(hint);
    if (media_types::is_schema1(body) || media_types::is_schema1(hint_base)) {
        return base::unsupported("{}: {}", what, kSchema1Message);
    }
    if (!body.empty() && !hint_base.empty() && media_types::base_type(body) != hint_base) {
        return base::invalid_argument("{}: body says mediaType `{}` but it was described as `{}`",
                                      what, body, hint_base);
    }
    return body.empty() ? hint_base : body;
}

std::vector<std::string> sorted_keys(const Json* object) {
    std::vector<std::string> keys;
    if (object != nullptr && object->is_object()) {
        for (const auto& [key, value] : object->as_object()) {
            keys.push_back(key);
        }
    }
    std::sort(keys.begin(), keys.end());
    return keys;
}

base::Result<std::vector<std::string>> string_array(const Json* value, std::string_view what) {
    std::vector<std::string> out;
    if (value == nullptr || value->is_null()) {
        return out;
    }
    if (!value->is_array()) {
        return base::invalid_argument("{} must be an array of strings", what);
    }
    for (const auto& item : value->as_array()) {
        if (!item.is_string()) {
            return base::invalid_argument("{} must be an array of strings", what);
        }
        out.push_back(item.as_string());
    }
    return out;
}

}  // namespace

base::Result<ImageManifest> parse_image_manifest(std::string raw, std::string_view media_type) {
    const char* what = "image manifest";
    if (media_types::is_schema1(media_type)) {
        return base::unsupported("{}: {}", what, kSchema1Message);
    }
    if (!media_type.empty() && !media_types::is_manifest(media_type)) {
        return base::invalid_argument("{}: media type `{}` is not an image manifest type", what,
                                      media_type);
    }
    Json json = TRY(parse_document(raw, kMaxManifestBytes, what));
    ImageManifest manifest;
    manifest.schema_version = TRY(schema_version(json, what));
    manifest.media_type = TRY(reconcile_media_type(json, media_type, what));
    if (manifest.media_type.empty()) {
        manifest.media_type = std::string(media_types::kOciManifest);
    }
    if (!media_types::is_manifest(manifest.media_type)) {
        return base::invalid_argument("{}: mediaType `{}` is not an image manifest type", what,
                                      manifest.media_type);
    }
    if (json.contains("manifests")) {
        return base::invalid_argument(
            "{}: has a `manifests` field (an index and a manifest at once)", what);
    }
    const Json* config = json.find("config");
    if (config == nullptr) {
        return base::invalid_argument("{}: `config` is missing", what);
    }
    manifest.config = TRY(internal::descriptor_from_json(*config, "image manifest config"));
    const Json* layers = json.find("layers");
    if (layers == nullptr || !layers->is_array()) {
        return base::invalid_argument("{}: `layers` is missing or not an array", what);
    }
    for (size_t i = 0; i < layers->as_array().size(); ++i) {
        manifest.layers.push_back(TRY(internal::descriptor_from_json(
            layers->as_array()[i], fmt::format("image manifest layers[{}]", i))));
    }
    if (media_types::is_docker(manifest.media_type)) {
        // Docker schema 2 requires mediaType on every descriptor.
        if (manifest.config.media_type.empty()) {
            return base::invalid_argument("{}: config descriptor has no mediaType", what);
        }
    }
    for (size_t i = 0; i < manifest.layers.size(); ++i) {
        if (manifest.layers[i].media_type.empty()) {
            return base::invalid_argument("{}: layers[{}] has no mediaType", what, i);
        }
    }
    manifest.artifact_type = TRY(optional_string(json, "artifactType", what));
    if (const Json* subject = json.find("subject"); subject != nullptr && !subject->is_null()) {
        manifest.subject = TRY(internal::descriptor_from_json(*subject, "image manifest subject"));
    }
    if (const Json* annotations = json.find("annotations")) {
        manifest.annotations =
            TRY(internal::string_map_from_json(*annotations, "image manifest annotations"));
    }
    manifest.digest = Digest::sha256_of(raw);
    manifest.raw = std::move(raw);
    return manifest;
}

base::Result<ImageIndex> parse_image_index(std::string raw, std::string_view media_type) {
    const char* what = "image index";
    if (media_types::is_schema1(media_type)) {
        return base::unsupported("{}: {}", what, kSchema1Message);
    }
    if (!media_type.empty() && !media_types::is_index(media_type)) {
        return base::invalid_argument("{}: media type `{}` is not an index type", what, media_type);
    }
    Json json = TRY(parse_document(raw, kMaxManifestBytes, what));
    ImageIndex index;
    index.schema_version = TRY(schema_version(json, what));
    index.media_type = TRY(reconcile_media_type(json, media_type, what));
    if (index.media_type.empty()) {
        index.media_type = std::string(media_types::kOciIndex);
    }
    if (!media_types::is_index(index.media_type)) {
        return base::invalid_argument("{}: mediaType `{}` is not an index type", what,
                                      index.media_type);
    }
    if (json.contains("config") || json.contains("layers")) {
        return base::invalid_argument(
            "{}: has `config`/`layers` fields (an index and a manifest at once)", what);
    }
    const Json* manifests = json.find("manifests");
    if (manifests == nullptr || !manifests->is_array()) {
        return base::invalid_argument("{}: `manifests` is missing or not an array", what);
    }
    for (size_t i = 0; i < manifests->as_array().size(); ++i) {
        auto descriptor = TRY(internal::descriptor_from_json(
            manifests->as_array()[i], fmt::format("image index manifests[{}]", i)));
        if (descriptor.media_type.empty()) {
            return base::invalid_argument("{}: manifests[{}] has no mediaType", what, i);
        }
        index.manifests.push_back(std::move(descriptor));
    }
    index.artifact_type = TRY(optional_string(json, "artifactType", what));
    if (const Json* subject = json.find("subject"); subject != nullptr && !subject->is_null()) {
        index.subject = TRY(internal::descriptor_from_json(*subject, "image index subject"));
    }
    if (const Json* annotations = json.find("annotations")) {
        index.annotations =
            TRY(internal::string_map_from_json(*annotations, "image index annotations"));
    }
    index.digest = Digest::sha256_of(raw);
    index.raw = std::move(raw);
    return index;
}

base::Result<ImageConfig> parse_image_config(std::string raw) {
    const char* what = "image config";
    Json json = TRY(parse_document(raw, kMaxConfigBytes, what));
    ImageConfig config;
    config.created = TRY(optional_string(json, "created", what));
    config.author = TRY(optional_string(json, "author", what));
    config.platform.architecture = TRY(optional_string(json, "architecture", what));
    config.platform.os = TRY(optional_string(json, "os", what));
    config.platform.variant = TRY(optional_string(json, "variant", what));
    config.platform.os_version = TRY(optional_string(json, "os.version", what));
    config.platform.os_features =
        TRY(string_array(json.find("os.features"), "image config `os.features`"));
    if (config.platform.architecture.empty() || config.platform.os.empty()) {
        return base::invalid_argument("{}: `architecture` and `os` are required", what);
    }
    if (const Json* runtime = json.find("config"); runtime != nullptr && !runtime->is_null()) {
        if (!runtime->is_object()) {
            return base::invalid_argument("{}: `config` must be an object", what);
        }
        const char* where = "image config `config`";
        auto& out = config.config;
        out.user = TRY(optional_string(*runtime, "User", where));
        out.working_dir = TRY(optional_string(*runtime, "WorkingDir", where));
        out.stop_signal = TRY(optional_string(*runtime, "StopSignal", where));
        out.env = TRY(string_array(runtime->find("Env"), "image config `Env`"));
        if (const Json* entrypoint = runtime->find("Entrypoint");
            entrypoint != nullptr && !entrypoint->is_null()) {
            out.entrypoint = TRY(string_array(entrypoint, "image config `Entrypoint`"));
        }
        if (const Json* cmd = runtime->find("Cmd"); cmd != nullptr && !cmd->is_null()) {
            out.cmd = TRY(string_array(cmd, "image config `Cmd`"));
        }
        for (const char* key : {"ExposedPorts", "Volumes"}) {
            const Json* value = runtime->find(key);
            if (value != nullptr && !value->is_null() && !value->is_object()) {
                return base::invalid_argument("{}: `{}` must be an object", what, key);
            }
        }
        out.exposed_ports = sorted_keys(runtime->find("ExposedPorts"));
        out.volumes = sorted_keys(runtime->find("Volumes"));
        if (const Json* labels = runtime->find("Labels")) {
            out.labels = TRY(internal::string_map_from_json(*labels, "image config `Labels`"));
        }
    }
    const Json* rootfs = json.find("rootfs");
    if (rootfs == nullptr || !rootfs->is_object()) {
        return base::invalid_argument("{}: `rootfs` is missing or not an object", what);
    }
    config.rootfs_type = TRY(optional_string(*rootfs, "type", "image config `rootfs`"));
    if (config.rootfs_type != "layers") {
        return base::invalid_argument("{}: rootfs.type must be `layers`, got `{}`", what,
                                      config.rootfs_type);
    }
    auto diff_ids = TRY(string_array(rootfs->find("diff_ids"), "image config `rootfs.diff_ids`"));
    for (size_t i = 0; i < diff_ids.size(); ++i) {
        auto digest = Digest::parse(diff_ids[i]);
        if (!digest) {
            return base::invalid_argument("{}: rootfs.diff_ids[{}]: {}", what, i,
                                          digest.error().message());
        }
        config.diff_ids.push_back(digest.release_value());
    }
    if (const Json* history = json.find("history"); history != nullptr && history->is_array()) {
        for (const auto& entry : history->as_array()) {
            if (!entry.is_object()) {
                continue;
            }
            HistoryEntry item;
            item.created = TRY(optional_string(entry, "created", "image config history"));
            item.created_by = TRY(optional_string(entry, "created_by", "image config history"));
            item.comment = TRY(optional_string(entry, "comment", "image config history"));
            if (const Json* empty = entry.find("empty_layer"); empty && empty->is_bool()) {
                item.empty_layer = empty->as_bool();
            }
            config.history.push_back(std::move(item));
        }
    }
    config.digest = Digest::sha256_of(raw);
    config.raw = std::move(raw);
    return config;
}

base::Result<std::string> detect_manifest_media_type(std::string_view raw) {
    Json json = TRY(parse_document(raw, kMaxManifestBytes, "manifest"));
    std::string body = TRY(optional_string(json, "mediaType", "manifest"));
    if (!body.empty()) {
        return media_types::base_type(body);
    }
    if (const Json* version = json.find("schemaVersion");
        version && version->is_int() && version->as_int() == 1) {
        return std::string(media_types::kDockerSchema1Manifest);
    }
    if (json.contains("manifests")) {
        return std::string(media_types::kOciIndex);
    }
    if (json.contains("config")) {
        return std::string(media_types::kOciManifest);
    }
    return std::string();
}

base::Result<ManifestDocument> parse_manifest_document(std::string raw,
                                                       std::string_view media_type) {
    std::string type = media_types::base_type(media_type);
    if (type.empty()) {
        type = TRY(detect_manifest_media_type(raw));
    }
    if (media_types::is_schema1(type)) {
        return base::unsupported("manifest: {}", kSchema1Message);
    }
    if (media_types::is_index(type)) {
        return ManifestDocument(TRY(parse_image_index(std::move(raw), type)));
    }
    if (media_types::is_manifest(type)) {
        return ManifestDocument(TRY(parse_image_manifest(std::move(raw), type)));
    }
    if (type.empty()) {
        return base::invalid_argument(
            "manifest: cannot tell its type (no mediaType, config or manifests)");
    }
    return base::unsupported("manifest: media type `{}` is not an image manifest or index", type);
}

base::Result<Descriptor> select_manifest(const ImageIndex& index, const PlatformMatcher& matcher) {
    const Descriptor* best = nullptr;
    int best_rank = 0;
    std::vector<std::string> offered;
    for (const auto& entry : index.manifests) {
        if (entry.is_attestation() || !media_types::is_manifest(entry.media_type)) {
            continue;
        }
        int rank;
        if (entry.platform) {
            offered.push_back(normalize(*entry.platform).str());
            auto matched = matcher.rank(*entry.platform);
            if (!matched) {
                continue;
            }
            rank = *matched;
        } else {
            // containerd accepts entries without a platform; rank them last.
            offered.push_back("(no platform)");
            rank = 1000;
        }
        if (best == nullptr || rank < best_rank) {
            best = &entry;
            best_rank = rank;
        }
    }
    if (best == nullptr) {
        std::string list;
        for (const auto& name : offered) {
            list += (list.empty() ? "" : ", ") + name;
        }
        return base::not_found("no manifest for platform {} in index {} (it offers: {})",
                               matcher.wanted().str(), index.digest.str(),
                               list.empty() ? "nothing runnable" : list);
    }
    return *best;
}

std::string serialize_descriptor_json(const Descriptor& descriptor) {
    return internal::descriptor_to_json(descriptor).dump();
}

std::string serialize_index(const std::vector<Descriptor>& manifests,
                            const Annotations& annotations) {
    Json json = Json::object();
    json.set("schemaVersion", 2);
    json.set("mediaType", media_types::kOciIndex);
    Json list = Json::array();
    for (const auto& manifest : manifests) {
        list.push_back(internal::descriptor_to_json(manifest));
    }
    json.set("manifests", std::move(list));
    if (!annotations.empty()) {
        Json object = Json::object();
        for (const auto& [key, value] : annotations) {
            object.set(key, value);
        }
        json.set("annotations", std::move(object));
    }
    return json.dump();
}

}  // namespace locald::oci
