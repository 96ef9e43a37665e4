// oci/descriptor.h — the OCI content descriptor, the one pointer type that
// connects indexes, manifests, configs and layers.
//
// Contract: plain data. `digest` is always a validated Digest; `size` is
// the exact byte count of the blob (checked on every read and commit).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "oci/digest.h"
#include "oci/platform.h"

namespace locald::oci {

using Annotations = std::map<std::string, std::string>;

struct Descriptor {
    std::string media_type;
    Digest digest;
    int64_t size = 0;
    std::vector<std::string> urls;  // foreign layers; never fetched with credentials
    Annotations annotations;
    std::optional<Platform> platform;  // index entries only
    std::string artifact_type;         // OCI 1.1; "" when absent
    std::optional<std::string> data;   // OCI 1.1 embedded data, still base64

    // The annotation's value, or "" when absent.
    std::string annotation(std::string_view key) const;
    // BuildKit attestation manifests (`vnd.docker.reference.type=
    // attestation-manifest`, or platform unknown/unknown).
    bool is_attestation() const;
};

}  // namespace locald::oci
