// oci/manifest.h — the manifest, index and image-config model.
//
// Contract: every parsed document keeps the exact bytes it was parsed from
// (`raw`) and their digest; digests are computed over those bytes, never
// over a re-serialisation. Parsers enforce the size caps (4 MiB for
// manifests, indexes and configs), refuse Docker schema 1 with a clear
// Unsupported error, and check that a body's `mediaType` agrees with the
// media type it was served/described with (CVE-2021-41190).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/error.h"
#include "oci/descriptor.h"
#include "oci/platform.h"

namespace locald::oci {

inline constexpr size_t kMaxManifestBytes = 4 * 1024 * 1024;
inline constexpr size_t kMaxConfigBytes = 4 * 1024 * 1024;

struct ImageManifest {
    std::string raw;  // the bytes as received
    Digest digest;    // digest of `raw`
    int schema_version = 2;
    std::string media_type;  // from the body, or the hint when the body has none
    std::string artifact_type;
    Descriptor config;
    std::vector<Descriptor> layers;
    std::optional<Descriptor> subject;
    Annotations annotations;
};

struct ImageIndex {
    std::string raw;
    Digest digest;
    int schema_version = 2;
    std::string media_type;
    std::string artifact_type;
    std::vector<Descriptor> manifests;
    std::optional<Descriptor> subject;
    Annotations annotations;
};

// The `config` object of an image config (runtime defaults).
struct ContainerConfig {
    std::string user;
    std::vector<std::string> exposed_ports;              // "80/tcp", sorted
    std::vector<std::string> env;                        // "K=V" in order
    std::optional<std::vector<std::string>> entrypoint;  // nullopt = not set (null)
    std::optional<std::vector<std::string>> cmd;
    std::vector<std::string> volumes;  // sorted
    std::string working_dir;
    std::map<std::string, std::string> labels;
    std::string stop_signal;
};

struct HistoryEntry {
    std::string created;
    std::string created_by;
    std::string comment;
    bool empty_layer = false;
};

struct ImageConfig {
    std::string raw;
    Digest digest;
    std::string created;  // RFC 3339, "" when absent
    std::string author;
    Platform platform;  // architecture, os, variant, os.version, os.features
    ContainerConfig config;
    std::string rootfs_type;  // "layers"
    std::vector<Digest> diff_ids;
    std::vector<HistoryEntry> history;
};

// `media_type` is what the document was described or served as ("" when
// unknown: then the body's mediaType decides, and a body without one is
// treated as an OCI manifest if it has `config`, an index if it has
// `manifests`).
base::Result<ImageManifest> parse_image_manifest(std::string raw, std::string_view media_type = {});
base::Result<ImageIndex> parse_image_index(std::string raw, std::string_view media_type = {});
base::Result<ImageConfig> parse_image_config(std::string raw);

// Either a manifest or an index, decided from the media type / body.
using ManifestDocument = std::variant<ImageManifest, ImageIndex>;
base::Result<ManifestDocument> parse_manifest_document(std::string raw,
                                                       std::string_view media_type = {});
// The media type a manifest document body declares, detecting it as above
// ("" if it cannot tell). Used when a blob is found by digest only.
base::Result<std::string> detect_manifest_media_type(std::string_view raw);

// Picks the best entry of `index` for `matcher` (containerd order; ties keep
// index order). Attestation manifests and non-manifest entries are skipped.
// NotFound lists the platforms the index offers.
base::Result<Descriptor> select_manifest(const ImageIndex& index, const PlatformMatcher& matcher);

// Serialisation, used to write new documents (save, tests, indexes).
// Keys are emitted in OCI order; output is compact JSON.
std::string serialize_descriptor_json(const Descriptor& descriptor);
std::string serialize_index(const std::vector<Descriptor>& manifests,
                            const Annotations& annotations = {});

}  // namespace locald::oci
