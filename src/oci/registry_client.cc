#include "oci/registry_client.h"

#include <unistd.h>

#include <charconv>

#include "oci/manifest.h"
#include "oci/media_types.h"

namespace locald::oci {

namespace {

std::optional<int64_t> to_int(std::string_view text) {
    int64_t value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value < 0) {
        return std::nullopt;
    }
    return value;
}

// `Range: 0-N` on upload responses (distribution reports the bytes it has).
std::optional<int64_t> upload_range_end(const HttpHeaders& headers) {
    auto range = headers.get("range");
    if (!range) {
        return std::nullopt;
    }
    std::string_view text = *range;
    if (text.starts_with("bytes=")) {
        text.remove_prefix(6);
    }
    auto dash = text.find('-');
    if (dash == std::string_view::npos) {
        return std::nullopt;
    }
    return to_int(text.substr(dash + 1));
}

base::Result<std::string> pread_exact(int fd, int64_t offset, int64_t size) {
    std::string out(static_cast<size_t>(size), '\0');
    size_t done = 0;
    while (done < out.size()) {
        ssize_t n = ::pread(fd, out.data() + done, out.size() - done,
                            static_cast<off_t>(offset + static_cast<int64_t>(done)));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return base::errno_error("reading blob data");
        }
        if (n == 0) {
            return base::data_loss("blob data ended early at byte {}",
                                   offset + static_cast<int64_t>(done));
        }
        done += static_cast<size_t>(n);
    }
    return out;
}

}  // namespace

std::optional<ContentRange> parse_content_range(std::string_view value) {
    if (!value.starts_with("bytes ")) {
        return std::nullopt;
    }
    value.remove_prefix(6);
    auto dash = value.find('-');
    auto slash = value.find('/');
    if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) {
        return std::nullopt;
    }
    auto start = to_int(value.substr(0, dash));
    auto end = to_int(value.substr(dash + 1, slash - dash - 1));
    if (!start || !end || *end < *start) {
        return std::nullopt;
    }
    ContentRange range{*start, *end, -1};
    std::string_view total = value.substr(slash + 1);
    if (total != "*") {
        auto parsed = to_int(total);
        if (!parsed || *parsed <= *end) {
            return std::nullopt;
        }
        range.total = *parsed;
    }
    return range;
}

base::Result<std::unique_ptr<RegistryClient>> RegistryClient::create(Endpoint endpoint,
                                                                     TransportOptions options,
                                                                     bool push) {
    std::unique_ptr<RegistryClient> client(new RegistryClient());
    client->m_push = push;
    client->m_transport = TRY(RegistryTransport::create(std::move(endpoint), std::move(options)));
    return client;
}

std::vector<std::string> RegistryClient::scopes(std::string_view extra_repository) const {
    std::vector<std::string> out = {repository_scope(repository(), m_push)};
    if (!extra_repository.empty() && extra_repository != repository()) {
        out.push_back(repository_scope(extra_repository, false));
    }
    return out;
}

base::Result<std::optional<ManifestHead>> RegistryClient::head_manifest(
    std::string_view reference) {
    TransportRequest request;
    request.method = "HEAD";
    request.path = fmt::format("/v2/{}/manifests/{}", repository(), reference);
    request.headers.add("Accept", media_types::kManifestAccept);
    request.scopes = scopes();
    HttpResponse response = TRY(m_transport->send_retrying(request));
    if (!response.ok()) {
        return transport_failure(response, fmt::format("resolving `{}`", reference), host());
    }
    if (response.status == 404) {
        return base::not_found("not found: {}:{} at {}", repository(), reference, host());
    }
    if (response.status == 401 || response.status == 403) {
        return http_status_error(response, fmt::format("resolving `{}`", reference), host());
    }
    if (response.status != 200) {
        return std::optional<ManifestHead>();  // HEAD unsupported: GET will tell
    }
    auto digest_header = response.headers.get("docker-content-digest");
    if (!digest_header) {
        return std::optional<ManifestHead>();
    }
    auto digest = Digest::parse(*digest_header);
    if (!digest) {
        return std::optional<ManifestHead>();
    }
    ManifestHead head;
    head.digest = digest.release_value();
    if (auto length = response.headers.get("content-length")) {
        head.size = to_int(*length).value_or(-1);
    }
    head.media_type = media_types::base_type(response.headers.get("content-type").value_or(""));
    return std::optional<ManifestHead>(std::move(head));
}

base::Result<FetchedManifest> RegistryClient::get_manifest(std::string_view reference,
                                                           const std::optional<Digest>& expected) {
    TransportRequest request;
    request.path = fmt::format("/v2/{}/manifests/{}", repository(), reference);
    request.headers.add("Accept", media_types::kManifestAccept);
    request.scopes = scopes();
    request.max_buffered_body = kMaxManifestBytes;
    std::string what = fmt::format("fetching manifest `{}`", reference);
    HttpResponse response = TRY(m_transport->send_retrying(request));
    if (!response.ok()) {
        if (response.transport_error == TransportError::TooLarge) {
            return base::data_loss("{}: the manifest from `{}` exceeds {} bytes", what, host(),
                                   kMaxManifestBytes);
        }
        return transport_failure(response, what, host());
    }
    if (response.status == 404) {
        return base::not_found("not found: {}:{} at {}", repository(), reference, host());
    }
    if (response.status != 200) {
        return http_status_error(response, what, host());
    }
    FetchedManifest manifest;
    manifest.raw = std::move(response.body);
    manifest.media_type = media_types::base_type(response.headers.get("content-type").value_or(""));
    DigestAlgorithm algorithm = expected ? expected->algorithm() : DigestAlgorithm::Sha256;
    manifest.digest = Digest::of(algorithm, manifest.raw);
    if (expected && manifest.digest != *expected) {
        return base::data_loss("manifest `{}` from `{}` has digest {} instead", expected->str(),
                               host(), manifest.digest.str());
    }
    if (!expected) {
        if (auto header = response.headers.get("docker-content-digest")) {
            auto claimed = Digest::parse(*header);
            if (!claimed) {
                return base::data_loss("{}: `{}` sent an invalid Docker-Content-Digest", what,
                                       host());
            }
            Digest actual = Digest::of(claimed->algorithm(), manifest.raw);
            if (actual != *claimed) {
                return base::data_loss("{}: `{}` said the manifest is {} but its bytes hash to {}",
                                       what, host(), claimed->str(), actual.str());
            }
            if (claimed->algorithm() != DigestAlgorithm::Sha256) {
                manifest.digest = Digest::sha256_of(manifest.raw);
            }
        }
    }
    if (media_types::is_schema1(manifest.media_type)) {
        return base::unsupported(
            "{}: `{}` served a Docker schema 1 manifest, which locald does not support "
            "(re-push the image with a current client)",
            what, host());
    }
    if (manifest.media_type.empty() || manifest.media_type == "application/json") {
        manifest.media_type = TRY(detect_manifest_media_type(manifest.raw));
    }
    return manifest;
}

base::Result<bool> RegistryClient::blob_exists(const Digest& digest) {
    TransportRequest request;
    request.method = "HEAD";
    request.path = fmt::format("/v2/{}/blobs/{}", repository(), digest.str());
    request.scopes = scopes();
    HttpResponse response = TRY(m_transport->send_retrying(request));
    if (!response.ok()) {
        return transport_failure(response, fmt::format("checking blob {}", digest.str()), host());
    }
    if (response.status == 200) {
        return true;
    }
    if (response.status == 404) {
        return false;
    }
    return http_status_error(response, fmt::format("checking blob {}", digest.str()), host());
}

base::Result<int64_t> RegistryClient::fetch_blob(const ContentStore& store,
                                                 const Descriptor& descriptor,
                                                 const BlobProgress& progress,
                                                 const RetryNotice& retry_notice) {
    const Digest& digest = descriptor.digest;
    const int64_t size = descriptor.size;
    std::string what = fmt::format("fetching blob {}", digest.str());
    auto begin = TRY(store.begin_ingest(digest.str(), digest, size).context(what));
    if (!begin) {
        return int64_t{0};
    }
    IngestWriter writer = std::move(*begin);
    int64_t fetched = 0;
    int failures = 0;
    bool use_range = true;
    const std::string path = fmt::format("/v2/{}/blobs/{}", repository(), digest.str());
    const int max_attempts = m_transport->retry_policy().max_attempts;

    // Throws the partial data away and starts a fresh ingest at offset 0.
    auto restart = [&]() -> base::Result<bool> {
        writer.discard();
        auto again = TRY(store.begin_ingest(digest.str(), digest, size).context(what));
        if (!again) {
            return false;  // someone else committed it meanwhile
        }
        writer = std::move(*again);
        return true;
    };

    while (true) {
        const int64_t start = writer.offset();
        if (progress) {
            progress(start, size);
        }
        if (size >= 0 && start >= size) {
            break;  // everything is in the ingest already: verify and commit
        }
        TransportRequest request;
        request.path = path;
        request.scopes = scopes();
        if (start > 0 && use_range) {
            request.headers.add("Range", fmt::format("bytes={}-", start));
        }
        bool first = true;
        bool bad_range = false;
        bool vanished = false;  // committed by another process during a restart
        BodySink sink = [&](std::string_view data, long status,
                            const HttpHeaders& headers) -> base::Result<void> {
            if (first) {
                first = false;
                if (writer.offset() > 0 && status == 206) {
                    auto range = parse_content_range(headers.get("content-range").value_or(""));
                    if (!range || range->start != writer.offset() ||
                        (range->total >= 0 && size >= 0 && range->total != size)) {
                        bad_range = true;
                        return base::data_loss("`{}` answered a Range request with `{}`", host(),
                                               headers.get("content-range").value_or("nothing"));
                    }
                } else if (writer.offset() > 0) {
                    // 200: the server ignored Range and sends the whole blob.
                    if (!TRY(restart())) {
                        vanished = true;
                        return base::cancelled("blob committed concurrently");
                    }
                } else if (status == 206) {
                    bad_range = true;
                    return base::data_loss("`{}` sent a partial response nobody asked for", host());
                }
            }
            TRY(writer.write(data));
            fetched += static_cast<int64_t>(data.size());
            if (progress) {
                progress(writer.offset(), size);
            }
            return base::ok();
        };
        HttpResponse response = TRY(m_transport->send(request, sink));
        if (vanished) {
            return fetched;
        }
        if (response.ok() && (response.status == 200 || response.status == 206)) {
            break;
        }
        if (bad_range || (response.ok() && response.status == 416)) {
            // A broken Range implementation: start over without Range.
            use_range = false;
            if (!TRY(restart())) {
                return fetched;
            }
            if (++failures >= max_attempts) {
                return base::unavailable("{}: `{}` keeps failing partial downloads", what, host());
            }
            continue;
        }
        if (!response.ok() && response.transport_error == TransportError::Aborted) {
            return transport_failure(response, what, host());
        }
        if (m_transport->should_retry(response)) {
            // Progress resets the budget: a long blob on a flaky link still completes.
            failures = writer.offset() > start ? 1 : failures + 1;
            if (failures >= max_attempts) {
                return response.ok() ? http_status_error(response, what, host())
                                     : transport_failure(response, what, host());
            }
            if (retry_notice) {
                retry_notice(response.ok()
                                 ? fmt::format("HTTP {}, retrying", response.status)
                                 : fmt::format("{} at byte {}, resuming",
                                               response.transport_message, writer.offset()));
            }
            m_transport->backoff(failures, &response);
            continue;
        }
        if (!response.ok()) {
            return transport_failure(response, what, host());
        }
        if (response.status == 404) {
            return base::not_found("blob {} not found at `{}/{}`", digest.str(), host(),
                                   repository());
        }
        return http_status_error(response, what, host());
    }
    TRY(writer.commit(digest, size)
            .context(fmt::format("blob {} from `{}`", digest.str(), host())));
    return fetched;
}

base::Result<std::string> RegistryClient::upload_url(const std::string& location) const {
    return resolve_url(m_transport->base_url() + "/v2/", location);
}

base::Result<std::string> RegistryClient::start_upload(const std::vector<std::string>& scopes) {
    TransportRequest request;
    request.method = "POST";
    request.path = fmt::format("/v2/{}/blobs/uploads/", repository());
    request.scopes = scopes;
    HttpResponse response = TRY(m_transport->send_retrying(request));
    if (!response.ok()) {
        return transport_failure(response, "starting a blob upload", host());
    }
    if (response.status != 202) {
        return http_status_error(response, "starting a blob upload", host());
    }
    auto location = response.headers.get("location");
    if (!location) {
        return base::unavailable("`{}` started an upload without a Location", host());
    }
    return upload_url(*location);
}

base::Result<bool> RegistryClient::mount_blob(const Digest& digest,
                                              std::string_view from_repository) {
    TransportRequest request;
    request.method = "POST";
    request.path = fmt::format("/v2/{}/blobs/uploads/?mount={}&from={}", repository(),
                               url_escape(digest.str()), url_escape(from_repository));
    request.scopes = scopes(from_repository);
    HttpResponse response = TRY(m_transport->send_retrying(request));
    if (!response.ok()) {
        return false;
    }
    if (response.status == 201) {
        return true;
    }
    if (response.status == 202) {
        // The registry started a plain upload instead; cancel it.
        if (auto location = response.headers.get("location")) {
            TransportRequest cancel;
            cancel.method = "DELETE";
            cancel.path = TRY(upload_url(*location));
            cancel.scopes = scopes();
            (void)m_transport->send(cancel);
        }
    }
    return false;
}

base::Result<void> RegistryClient::upload_blob(const Digest& digest, int64_t size, int fd,
                                               const BlobProgress& progress) {
    std::string what = fmt::format("uploading blob {}", digest.str());
    const int max_attempts = m_transport->retry_policy().max_attempts;
    auto with_digest = [&](const std::string& location) {
        return location + (location.find('?') == std::string::npos ? "?" : "&") +
               "digest=" + url_escape(digest.str());
    };

    if (size <= m_monolithic_limit) {
        std::string body = TRY(pread_exact(fd, 0, size));
        for (int attempt = 1;; ++attempt) {
            std::string location = TRY(start_upload(scopes()).context(what));
            TransportRequest request;
            request.method = "PUT";
            request.path = with_digest(location);
            request.headers.add("Content-Type", "application/octet-stream");
            request.body = body;
            request.scopes = scopes();
            HttpResponse response = TRY(m_transport->send(request));
            if (response.ok() && response.status == 201) {
                if (progress) {
                    progress(size, size);
                }
                return base::ok();
            }
            if (!m_transport->should_retry(response) || attempt >= max_attempts) {
                return response.ok() ? http_status_error(response, what, host())
                                     : transport_failure(response, what, host());
            }
            m_transport->backoff(attempt, &response);
        }
    }

    // Chunked: PATCH with Content-Range; after a failure ask the upload
    // session how much it has (GET → 204 + Range) and continue from there.
    std::string location = TRY(start_upload(scopes()).context(what));
    int64_t offset = 0;
    int failures = 0;
    while (offset < size) {
        int64_t length = std::min(m_chunk_size, size - offset);
        TransportRequest request;
        request.method = "PATCH";
        request.path = location;
        request.headers.add("Content-Type", "application/octet-stream");
        request.headers.add("Content-Range", fmt::format("{}-{}", offset, offset + length - 1));
        request.body = TRY(pread_exact(fd, offset, length));
        request.scopes = scopes();
        HttpResponse response = TRY(m_transport->send(request));
        if (response.ok() && response.status == 202) {
            if (auto next = response.headers.get("location")) {
                location = TRY(upload_url(*next));
            }
            auto end = upload_range_end(response.headers);
            offset = end ? *end + 1 : offset + length;
            failures = 0;
            if (progress) {
                progress(offset, size);
            }
            continue;
        }
        if (response.ok() && !m_transport->should_retry(response) && response.status != 416) {
            return http_status_error(response, what, host());
        }
        if (++failures >= max_attempts) {
            return response.ok() ? http_status_error(response, what, host())
                                 : transport_failure(response, what, host());
        }
        m_transport->backoff(failures, response.ok() ? &response : nullptr);
        TransportRequest status;
        status.path = location;
        status.scopes = scopes();
        HttpResponse state = TRY(m_transport->send_retrying(status));
        if (state.ok() && state.status == 204) {
            auto end = upload_range_end(state.headers);
            offset = end ? *end + 1 : 0;
            if (auto next = state.headers.get("location")) {
                location = TRY(upload_url(*next));
            }
        } else {
            // The session is gone: start over.
            location = TRY(start_upload(scopes()).context(what));
            offset = 0;
        }
    }
    TransportRequest finish;
    finish.method = "PUT";
    finish.path = with_digest(location);
    finish.headers.add("Content-Type", "application/octet-stream");
    finish.scopes = scopes();
    HttpResponse response = TRY(m_transport->send_retrying(finish));
    if (!response.ok()) {
        return transport_failure(response, what, host());
    }
    if (response.status != 201) {
        return http_status_error(response, what, host());
    }
    return base::ok();
}

base::Result<Digest> RegistryClient::put_manifest(std::string_view reference, std::string_view raw,
                                                  std::string_view media_type) {
    std::string what = fmt::format("pushing manifest `{}`", reference);
    TransportRequest request;
    request.method = "PUT";
    request.path = fmt::format("/v2/{}/manifests/{}", repository(), reference);
    request.headers.add("Content-Type", media_type);
    request.body = std::string(raw);
    request.scopes = scopes();
    HttpResponse response = TRY(m_transport->send_retrying(request));
    if (!response.ok()) {
        return transport_failure(response, what, host());
    }
    if (response.status != 201 && response.status != 200) {
        return http_status_error(response, what, host());
    }
    Digest digest = Digest::sha256_of(raw);
    if (auto header = response.headers.get("docker-content-digest")) {
        auto claimed = Digest::parse(*header);
        if (claimed && claimed->algorithm() == DigestAlgorithm::Sha256 && *claimed != digest) {
            return base::data_loss("{}: `{}` stored it as {} but we sent {}", what, host(),
                                   claimed->str(), digest.str());
        }
    }
    return digest;
}

}  // namespace locald::oci
