#include "oci/media_types.h"

#include <algorithm>
#include <cctype>

namespace locald::oci::media_types {

std::string base_type(std::string_view type) {
    auto semicolon = type.find(';');
    if (semicolon != std::string_view::npos) {
        type = type.substr(0, semicolon);
    }
    while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) {
        type.remove_prefix(1);
    }
    while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) {
        type.remove_suffix(1);
    }
    std::string out(type);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

bool is_index(std::string_view type) {
    auto base = base_type(type);
    return base == kOciIndex || base == kDockerManifestList;
}

bool is_manifest(std::string_view type) {
    auto base = base_type(type);
    return base == kOciManifest || base == kDockerManifest;
}

bool is_schema1(std::string_view type) {
    auto base = base_type(type);
    return base == kDockerSchema1Manifest || base == kDockerSchema1SignedManifest;
}

bool is_config(std::string_view type) {
    auto base = base_type(type);
    return base == kOciConfig || base == kDockerConfig;
}

bool is_layer(std::string_view type) {
    auto base = base_type(type);
    for (auto known : {kOciLayer, kOciLayerGzip, kOciLayerZstd, kOciLayerNondistributable,
                       kOciLayerNondistributableGzip, kOciLayerNondistributableZstd, kDockerLayer,
                       kDockerLayerGzip, kDockerLayerZstd, kDockerForeignLayerGzip}) {
        if (base == known) {
            return true;
        }
    }
    return false;
}

bool is_docker(std::string_view type) {
    return base_type(type).starts_with("application/vnd.docker.");
}

bool is_nondistributable(std::string_view type) {
    auto base = base_type(type);
    return base.find(".nondistributable.") != std::string::npos || base == kDockerForeignLayerGzip;
}

std::string_view to_string(Compression compression) {
    switch (compression) {
        case Compression::None:
            return "none";
        case Compression::Gzip:
            return "gzip";
        case Compression::Zstd:
            return "zstd";
        case Compression::Unknown:
            return "unknown";
    }
    return "unknown";
}

Compression layer_compression(std::string_view type) {
    auto base = base_type(type);
    if (base.ends_with("+gzip") || base.ends_with(".tar.gzip")) {
        return Compression::Gzip;
    }
    if (base.ends_with("+zstd") || base.ends_with(".tar.zstd")) {
        return Compression::Zstd;
    }
    if (base.ends_with(".tar") || base.ends_with(".v1.tar")) {
        return Compression::None;
    }
    return Compression::Unknown;
}

}  // namespace locald::oci::media_types
