// oci/push.h — `locald push`: an image from the store to a registry.
//
// Contract: every blob of the image (configs, layers) is checked with HEAD
// first and skipped when the registry has it; otherwise a cross-repository
// mount is tried when the image was pulled from another repository of the
// same registry, else it is uploaded (monolithic up to 32 MiB, chunked PATCH
// with Content-Range above, resuming after a failure). Child manifests of an
// index are pushed by digest, then the root manifest or index under the tag,
// each with its exact media type and bytes, so the registry serves the same
// digest the store has. Mirrors never receive pushes. An index whose
// platforms are not all in the store is refused (the registry would reject
// it), naming the missing manifest.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "base/error.h"
#include "oci/descriptor.h"
#include "oci/progress.h"
#include "oci/reference.h"
#include "oci/store.h"
#include "oci/transport.h"

namespace locald::oci {

struct PushOptions {
    std::string local_reference;
    std::string remote_reference;  // "" = same as local
    std::string config_dir;        // "" = base::Paths
    int64_t monolithic_limit = 32 << 20;
    int64_t chunk_size = 16 << 20;
    int parallel = 4;  // concurrent blob uploads
    std::optional<RetryPolicy> retry;
    std::function<void(std::chrono::milliseconds)> sleep;
};

struct PushedImage {
    Reference ref;  // remote ref
    Digest digest;  // of the root manifest/index
    int blobs_uploaded = 0;
    int blobs_mounted = 0;
    int blobs_present = 0;
    int64_t bytes_uploaded = 0;
};

base::Result<PushedImage> push(const ContentStore& store, const PushOptions& options,
                               ProgressSink* progress = nullptr);

// `locald login`: checks `credentials` against the registry (GET /v2/ with
// them, or a token request for Bearer registries) and, when they work, saves
// them in `<config_dir>/auth.json` (0600, in a 0700 dir).
base::Result<void> login(const std::string& config_dir, const std::string& registry,
                         const Credentials& credentials);
// `locald logout`: removes the saved entry; NotFound when there was none.
base::Result<void> logout(const std::string& config_dir, const std::string& registry);

// "https://host/" or "host" → "host" (docker.io aliases → docker.io).
base::Result<std::string> normalise_registry(std::string_view text);

}  // namespace locald::oci
