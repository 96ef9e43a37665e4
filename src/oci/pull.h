// oci/pull.h — `locald pull`: a reference → a complete image in the store.
//
// Contract: `pull()` resolves the reference against the configured endpoints
// (mirrors first, by prefix, then the registry), fetches the root manifest
// or index (HEAD first; a digest already in the store is not fetched again),
// picks the platform (host, or `platform`; attestations skipped), downloads
// the config and the missing layers in parallel straight into the store's
// ingest, and only then writes the manifests and records the ref in
// index.json. So a ref in the store always has all its blobs for the chosen
// platform. Offline (option or `offline = true` in config.toml) touches no
// network: digest refs resolve from blobs, tag refs from index.json, and a
// missing manifest, config or layer is NotFound naming it.
// Errors: 404 → "not found: REF at REGISTRY"; 401/403 → Unauthenticated with
// a `locald login` hint; mismatches → DataLoss naming the blob.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/error.h"
#include "oci/descriptor.h"
#include "oci/manifest.h"
#include "oci/platform.h"
#include "oci/progress.h"
#include "oci/reference.h"
#include "oci/store.h"
#include "oci/transport.h"

namespace locald::oci {

struct PullOptions {
    std::string reference;
    std::optional<Platform> platform;  // nullopt: the host's
    bool offline = false;
    int parallel = 6;        // concurrent blob downloads
    std::string config_dir;  // config.toml, auth.json, certs.d; "" = base::Paths
    // Hooks for tests and embedding (all optional).
    std::optional<RetryPolicy> retry;
    std::function<void(std::chrono::milliseconds)> sleep;
    std::optional<CredentialSources> credential_sources;
    std::shared_ptr<HttpClient> http;
    // Called for the config and every layer of the chosen manifest as soon
    // as the blob is in the store (just committed, or already there), from
    // the download threads: concurrently, in any order, never after pull()
    // returns. For starting to unpack while later layers still download.
    std::function<void(const ImageManifest& manifest, const Descriptor& blob)> on_blob_committed;
};

struct PulledImage {
    Reference ref;
    Descriptor root;      // what the ref now points at in the store
    Descriptor manifest;  // the platform manifest chosen
    std::string source;   // host/repository it came from ("" offline)
    int64_t bytes_downloaded = 0;
    int blobs_downloaded = 0;
    int blobs_present = 0;
    bool offline = false;
};

base::Result<PulledImage> pull(ContentStore& store, const PullOptions& options,
                               ProgressSink* progress = nullptr);

// Shared by pull/push/login: the options every transport gets from the
// config dir (config.toml, certs.d, credential sources).
base::Result<TransportOptions> default_transport_options(const std::string& config_dir);
// locald's config dir (LOCALD_HOME/config or XDG).
base::Result<std::string> default_config_dir();

}  // namespace locald::oci
