// oci/registry_client.h — the distribution API for one repository on one
// registry endpoint: manifests, blobs (download into the store with resume),
// uploads (mount, monolithic, chunked) and manifest pushes.
//
// Contract:
// - Manifests: the full Accept list is sent; bodies over 4 MiB are refused;
//   the digest is computed over the raw bytes and must equal the digest asked
//   for (by-digest) or the `Docker-Content-Digest` header (by-tag, when sent).
// - Blobs stream straight into the store's ingest while hashing. A dropped
//   connection resumes at the ingest's offset with `Range: bytes=N-`; a `206`
//   must carry `Content-Range: bytes N-…/SIZE`, and a server that answers
//   `200` instead restarts the ingest from 0. Retries (408/429/5xx/network)
//   back off and honour Retry-After; a failed pull leaves the partial ingest
//   for the next attempt, never a half blob in `blobs/`.
// - A digest or size mismatch is DataLoss naming the blob (the store drops
//   the ingest). Blob redirects (CDNs) are followed without credentials.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/error.h"
#include "oci/descriptor.h"
#include "oci/store.h"
#include "oci/transport.h"

namespace locald::oci {

struct FetchedManifest {
    std::string raw;
    std::string media_type;  // Content-Type, without parameters
    Digest digest;           // over `raw`
};

struct ManifestHead {
    Digest digest;
    int64_t size = -1;
    std::string media_type;
};

// Called with the bytes of a blob written so far (including resumed bytes).
using BlobProgress = std::function<void(int64_t done, int64_t total)>;
// Called when a transfer is retried (for progress output).
using RetryNotice = std::function<void(const std::string& why)>;

class RegistryClient {
public:
    // `push` asks for push scope on the repository.
    static base::Result<std::unique_ptr<RegistryClient>> create(Endpoint endpoint,
                                                                TransportOptions options,
                                                                bool push = false);

    RegistryTransport& transport() { return *m_transport; }
    const std::string& host() const { return m_transport->host(); }
    const std::string& repository() const { return m_transport->endpoint().repository; }

    // HEAD /v2/<repo>/manifests/<reference>; nullopt when the registry does
    // not answer with a usable digest (caller then GETs).
    base::Result<std::optional<ManifestHead>> head_manifest(std::string_view reference);
    // GET, verified as described above. `expected` is the digest for by-digest.
    base::Result<FetchedManifest> get_manifest(std::string_view reference,
                                               const std::optional<Digest>& expected);

    // HEAD /v2/<repo>/blobs/<digest>.
    base::Result<bool> blob_exists(const Digest& digest);
    // Downloads `descriptor` into `store` (resuming a partial ingest). Returns
    // the bytes fetched over the network (0 when already present).
    base::Result<int64_t> fetch_blob(const ContentStore& store, const Descriptor& descriptor,
                                     const BlobProgress& progress = {},
                                     const RetryNotice& retry_notice = {});

    // Tries a cross-repository mount from `from_repository` (same registry).
    // true = mounted. false = not mounted (the caller uploads).
    base::Result<bool> mount_blob(const Digest& digest, std::string_view from_repository);
    // Uploads a blob read from `fd` (size bytes): monolithic (POST + PUT)
    // up to `monolithic_limit`, else chunked PATCHes with Content-Range,
    // resuming from the registry's reported Range after a failure.
    base::Result<void> upload_blob(const Digest& digest, int64_t size, int fd,
                                   const BlobProgress& progress = {});
    // PUT /v2/<repo>/manifests/<reference> with its exact media type; the
    // registry's Docker-Content-Digest (when sent) must match.
    base::Result<Digest> put_manifest(std::string_view reference, std::string_view raw,
                                      std::string_view media_type);

    void set_monolithic_limit(int64_t bytes) { m_monolithic_limit = bytes; }
    void set_chunk_size(int64_t bytes) { m_chunk_size = bytes; }

private:
    RegistryClient() = default;
    std::vector<std::string> scopes(std::string_view extra_repository = {}) const;
    base::Result<std::string> start_upload(const std::vector<std::string>& scopes);
    base::Result<std::string> upload_url(const std::string& location) const;

    std::unique_ptr<RegistryTransport> m_transport;
    bool m_push = false;
    int64_t m_monolithic_limit = 32 << 20;
    int64_t m_chunk_size = 16 << 20;
};

// `bytes START-END/TOTAL` → {START, END, TOTAL (-1 for *)}.
struct ContentRange {
    int64_t start = 0;
    int64_t end = 0;
    int64_t total = -1;
};
std::optional<ContentRange> parse_content_range(std::string_view value);

}  // namespace locald::oci
