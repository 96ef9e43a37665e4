// oci/media_types.h — every manifest, index, config and layer media type
// locald understands (OCI image-spec v1.1 and Docker image manifest v2
// schema 2), and the few predicates built on them.
//
// Contract: media types are compared exactly after dropping parameters
// (`; charset=…`) and surrounding spaces. A layer's compression derived from
// its media type is a HINT only; the layer applier sniffs the magic bytes.
#pragma once

#include <string>
#include <string_view>

namespace locald::oci::media_types {

// OCI
inline constexpr std::string_view kOciLayoutHeader = "application/vnd.oci.layout.header.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kOciEmpty = "application/vnd.oci.empty.v1+json";
inline constexpr std::string_view kOciLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kOciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr std::string_view kOciLayerNondistributable =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
inline constexpr std::string_view kOciLayerNondistributableGzip =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
inline constexpr std::string_view kOciLayerNondistributableZstd =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

// Docker schema 2
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kDockerLayerGzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr std::string_view kDockerLayer = "application/vnd.docker.image.rootfs.diff.tar";
inline constexpr std::string_view kDockerLayerZstd =
    "application/vnd.docker.image.rootfs.diff.tar.zstd";
inline constexpr std::string_view kDockerForeignLayerGzip =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

// Docker schema 1: recognised only to refuse it with a clear message.
inline constexpr std::string_view kDockerSchema1Manifest =
    "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr std::string_view kDockerSchema1SignedManifest =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

// The Accept header for manifest requests: every manifest and index type, so
// registries never down-convert.
inline constexpr std::string_view kManifestAccept =
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

// Annotations
inline constexpr std::string_view kAnnotationRefName = "org.opencontainers.image.ref.name";
inline constexpr std::string_view kAnnotationContainerdImageName = "io.containerd.image.name";
inline constexpr std::string_view kAnnotationCreated = "org.opencontainers.image.created";
inline constexpr std::string_view kAnnotationDockerReferenceType = "vnd.docker.reference.type";
inline constexpr std::string_view kAnnotationDockerReferenceDigest = "vnd.docker.reference.digest";
inline constexpr std::string_view kAttestationManifest = "attestation-manifest";
// Where and when locald fetched a ref (set on index.json entries of the store).
inline constexpr std::string_view kAnnotationSource = "dev.locald.image.source";
inline constexpr std::string_view kAnnotationPulledAt = "dev.locald.image.pulled-at";

// `type` without parameters and surrounding blanks, lowercased.
std::string base_type(std::string_view type);

bool is_index(std::string_view type);     // OCI index or Docker manifest list
bool is_manifest(std::string_view type);  // OCI image manifest or Docker schema 2 manifest
bool is_schema1(std::string_view type);
bool is_config(std::string_view type);  // OCI or Docker image config
bool is_layer(std::string_view type);   // any tar layer type above (incl. nondistributable)
bool is_docker(std::string_view type);  // any application/vnd.docker.* type
bool is_nondistributable(std::string_view type);

enum class Compression { None, Gzip, Zstd, Unknown };
std::string_view to_string(Compression compression);
// From the media type only (a hint; the applier sniffs the stream).
Compression layer_compression(std::string_view type);

}  // namespace locald::oci::media_types
