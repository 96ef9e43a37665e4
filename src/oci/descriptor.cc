#include "oci/descriptor.h"

#include "oci/internal/codec.h"
#include "oci/media_types.h"

namespace locald::oci {

std::string Descriptor::annotation(std::string_view key) const {
    auto it = annotations.find(std::string(key));
    return it == annotations.end() ? std::string() : it->second;
}

bool Descriptor::is_attestation() const {
    if (annotation(media_types::kAnnotationDockerReferenceType) ==
        media_types::kAttestationManifest) {
        return true;
    }
    return platform && platform->os == "unknown" && platform->architecture == "unknown";
}

namespace internal {

base::Result<Annotations> string_map_from_json(const base::Json& json, std::string_view where) {
    Annotations out;
    if (json.is_null()) {
        return out;
    }
    if (!json.is_object()) {
        return base::invalid_argument("{}: expected an object of strings", where);
    }
    for (const auto& [key, value] : json.as_object()) {
        if (!value.is_string()) {
            return base::invalid_argument("{}: value of `{}` must be a string", where, key);
        }
        out[key] = value.as_string();
    }
    return out;
}

base::Result<Platform> platform_from_json(const base::Json& json, std::string_view where) {
    if (!json.is_object()) {
        return base::invalid_argument("{}: platform must be an object", where);
    }
    Platform platform;
    auto text = [&](std::string_view key, std::string& out, bool required) -> base::Result<void> {
        const base::Json* value = json.find(key);
        if (value == nullptr || value->is_null()) {
            if (required) {
                return base::invalid_argument("{}: platform has no `{}`", where, key);
            }
            return base::ok();
        }
        if (!value->is_string()) {
            return base::invalid_argument("{}: platform `{}` must be a string", where, key);
        }
        out = value->as_string();
        return base::ok();
    };
    TRY(text("architecture", platform.architecture, true));
    TRY(text("os", platform.os, true));
    TRY(text("variant", platform.variant, false));
    TRY(text("os.version", platform.os_version, false));
    if (const base::Json* features = json.find("os.features");
        features != nullptr && !features->is_null()) {
        if (!features->is_array()) {
            return base::invalid_argument("{}: platform `os.features` must be an array", where);
        }
        for (const auto& feature : features->as_array()) {
            if (!feature.is_string()) {
                return base::invalid_argument("{}: platform `os.features` must hold strings",
                                              where);
            }
            platform.os_features.push_back(feature.as_string());
        }
    }
    return platform;
}

base::Result<Descriptor> descriptor_from_json(const base::Json& json, std::string_view where) {
    if (!json.is_object()) {
        return base::invalid_argument("{}: a descriptor must be an object", where);
    }
    Descriptor descriptor;
    const base::Json* media_type = json.find("mediaType");
    if (media_type != nullptr && !media_type->is_null()) {
        if (!media_type->is_string()) {
            return base::invalid_argument("{}: `mediaType` must be a string", where);
        }
        descriptor.media_type = media_type->as_string();
    }
    const base::Json* digest = json.find("digest");
    if (digest == nullptr || !digest->is_string()) {
        return base::invalid_argument("{}: `digest` is missing or not a string", where);
    }
    auto parsed = Digest::parse(digest->as_string());
    if (!parsed) {
        return base::invalid_argument("{}: {}", where, parsed.error().message());
    }
    descriptor.digest = parsed.release_value();
    const base::Json* size = json.find("size");
    if (size == nullptr || !size->is_int() || size->as_int() < 0) {
        return base::invalid_argument("{}: `size` is missing or not a non-negative integer", where);
    }
    descriptor.size = size->as_int();
    if (const base::Json* urls = json.find("urls"); urls != nullptr && !urls->is_null()) {
        if (!urls->is_array()) {
            return base::invalid_argument("{}: `urls` must be an array", where);
        }
        for (const auto& url : urls->as_array()) {
            if (!url.is_string()) {
                return base::invalid_argument("{}: `urls` must hold strings", where);
            }
            descriptor.urls.push_back(url.as_string());
        }
    }
    if (const base::Json* annotations = json.find("annotations"); annotations != nullptr) {
        descriptor.annotations =
            TRY(string_map_from_json(*annotations, fmt::format("{} annotations", where)));
    }
    if (const base::Json* platform = json.find("platform");
        platform != nullptr && !platform->is_null()) {
        descriptor.platform = TRY(platform_from_json(*platform, where));
    }
    if (const base::Json* artifact = json.find("artifactType");
        artifact != nullptr && !artifact->is_null()) {
        if (!artifact->is_string()) {
            return base::invalid_argument("{}: `artifactType` must be a string", where);
        }
        descriptor.artifact_type = artifact->as_string();
    }
    if (const base::Json* data = json.find("data"); data != nullptr && !data->is_null()) {
        if (!data->is_string()) {
            return base::invalid_argument("{}: `data` must be a base64 string", where);
        }
        descriptor.data = data->as_string();
    }
    return descriptor;
}

base::Json platform_to_json(const Platform& platform) {
    base::Json json = base::Json::object();
    json.set("architecture", platform.architecture);
    json.set("os", platform.os);
    if (!platform.os_version.empty()) {
        json.set("os.version", platform.os_version);
    }
    if (!platform.os_features.empty()) {
        base::Json features = base::Json::array();
        for (const auto& feature : platform.os_features) {
            features.push_back(feature);
        }
        json.set("os.features", std::move(features));
    }
    if (!platform.variant.empty()) {
        json.set("variant", platform.variant);
    }
    return json;
}

base::Json descriptor_to_json(const Descriptor& descriptor) {
    base::Json json = base::Json::object();
    json.set("mediaType", descriptor.media_type);
    if (!descriptor.artifact_type.empty()) {
        json.set("artifactType", descriptor.artifact_type);
    }
    json.set("digest", descriptor.digest.str());
    json.set("size", descriptor.size);
    if (!descriptor.urls.empty()) {
        base::Json urls = base::Json::array();
        for (const auto& url : descriptor.urls) {
            urls.push_back(url);
        }
        json.set("urls", std::move(urls));
    }
    if (!descriptor.annotations.empty()) {
        base::Json annotations = base::Json::object();
        for (const auto& [key, value] : descriptor.annotations) {
            annotations.set(key, value);
        }
        json.set("annotations", std::move(annotations));
    }
    if (descriptor.data) {
        json.set("data", *descriptor.data);
    }
    if (descriptor.platform) {
        json.set("platform", platform_to_json(*descriptor.platform));
    }
    return json;
}

}  // namespace internal

}  // namespace locald::oci
