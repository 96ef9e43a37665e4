#include "oci/pull.h"

#include <atomic>
#include <thread>

#include "base/paths.h"
#include "base/version.h"
#include "oci/image.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/registry_client.h"

namespace locald::oci {

namespace {

void emit(ProgressSink* sink, ProgressEvent event) {
    if (sink) {
        event.operation = "pull";
        sink->on_event(event);
    }
}

struct FetchedDocument {
    std::string raw;
    std::string media_type;
    Digest digest;
};

// A manifest/index by digest: from the store when present (verified by the
// store), else from the registry (verified against the digest).
base::Result<FetchedDocument> document_by_digest(ContentStore& store, RegistryClient& client,
                                                 const Digest& digest,
                                                 std::string_view media_type_hint) {
    FetchedDocument doc;
    doc.digest = digest;
    if (store.has(digest)) {
        doc.raw = TRY(store.read_blob(digest, kMaxManifestBytes));
        doc.media_type = std::string(media_type_hint);
        if (doc.media_type.empty()) {
            doc.media_type = TRY(detect_manifest_media_type(doc.raw));
        }
        return doc;
    }
    FetchedManifest fetched = TRY(client.get_manifest(digest.str(), digest));
    doc.raw = std::move(fetched.raw);
    doc.media_type = fetched.media_type.empty() ? std::string(media_type_hint) : fetched.media_type;
    return doc;
}

// Downloads `blobs` with `parallel` workers; the first error stops new work
// and is returned once every worker has finished.
base::Result<void> fetch_blobs(ContentStore& store, RegistryClient& client,
                               const std::vector<Descriptor>& blobs, int parallel,
                               const std::string& ref, ProgressSink* progress, PulledImage& result,
                               const std::function<void(const Descriptor&)>& committed) {
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex mutex;
    std::optional<base::Error> first_error;
    auto worker = [&] {
        while (!failed.load()) {
            size_t index = next.fetch_add(1);
            if (index >= blobs.size()) {
                return;
            }
            const Descriptor& blob = blobs[index];
            std::string digest = blob.digest.str();
            if (store.has(blob.digest)) {
                std::lock_guard lock(mutex);
                ++result.blobs_present;
                emit(progress, {ProgressKind::LayerSkip, "", ref, digest, blob.size, blob.size});
                if (committed) {
                    committed(blob);
                }
                continue;
            }
            int64_t resume = store.ingest_offset(digest);
            emit(progress, {ProgressKind::LayerStart, "", ref, digest, blob.size, resume});
            auto fetched = client.fetch_blob(
                store, blob,
                [&](int64_t done, int64_t) {
                    emit(progress, {ProgressKind::LayerBytes, "", ref, digest, blob.size, done});
                },
                [&](const std::string& why) {
                    emit(progress, {ProgressKind::LayerRetry, "", ref, digest, blob.size, 0, why});
                });
            std::lock_guard lock(mutex);
            if (!fetched) {
                if (!first_error) {
                    first_error = fetched.release_error();
                }
                failed.store(true);
                return;
            }
            result.bytes_downloaded += fetched.value();
            ++result.blobs_downloaded;
            emit(progress, {ProgressKind::LayerDone, "", ref, digest, blob.size, blob.size});
            if (committed) {
                committed(blob);
            }
        }
    };
    size_t workers = std::min<size_t>(std::max(parallel, 1), blobs.size());
    std::vector<std::thread> threads;
    for (size_t i = 1; i < workers; ++i) {
        threads.emplace_back(worker);
    }
    if (workers > 0) {
        worker();
    }
    for (auto& thread : threads) {
        thread.join();
    }
    if (first_error) {
        return *first_error;
    }
    return base::ok();
}

base::Result<PulledImage> pull_offline(ContentStore& store, const Reference& ref,
                                       const PullOptions& options, ProgressSink* progress) {
    auto resolved = resolve_image(store, ref, options.platform);
    if (!resolved) {
        base::Error error = resolved.release_error();
        if (error.kind() == base::ErrorKind::NotFound) {
            return std::move(error.context("offline"));
        }
        return error;
    }
    for (const auto& layer : resolved->manifest.layers) {
        if (!store.has(layer.digest)) {
            return base::not_found("offline: {}: layer {} is not cached (pull it while online)",
                                   ref.str(), layer.digest.str());
        }
    }
    PulledImage pulled{ref, resolved->root, resolved->manifest_descriptor};
    pulled.offline = true;
    pulled.blobs_present = static_cast<int>(resolved->manifest.layers.size()) + 1;
    emit(progress, {ProgressKind::Done, "", ref.str(), resolved->root.digest.str(), -1, 0,
                    fmt::format("{}: {} (offline, from the local store)", ref.str(),
                                resolved->root.digest.str())});
    return pulled;
}

base::Result<PulledImage> pull_from(ContentStore& store, const Reference& ref,
                                    const Endpoint& endpoint, TransportOptions transport_options,
                                    const PullOptions& options, ProgressSink* progress) {
    auto client = TRY(RegistryClient::create(endpoint, std::move(transport_options)));
    // Blobs committed below stay unreferenced until set_ref(); the shared
    // lease keeps a concurrent `prune`/`rmi` from collecting them meanwhile.
    auto write_lease = TRY(store.hold_write_lease());
    std::string source = fmt::format("{}/{}", endpoint.host, endpoint.repository);
    emit(progress, {ProgressKind::Resolving, "", ref.str(), "", -1, 0, source});

    auto not_found_here = [&](base::Error error) -> base::Error {
        if (error.kind() == base::ErrorKind::NotFound) {
            return base::not_found("not found: {} at {}", ref.str(), endpoint.host);
        }
        return error;
    };

    // 1. The root document.
    FetchedDocument root;
    if (ref.has_digest()) {
        auto doc = document_by_digest(store, *client, *ref.digest(), "");
        if (!doc) {
            return not_found_here(doc.release_error());
        }
        root = doc.release_value();
    } else {
        auto head = client->head_manifest(ref.tag());
        if (!head) {
            return not_found_here(head.release_error());
        }
        if (head.value() && store.has(head.value()->digest)) {
            root = TRY(
                document_by_digest(store, *client, head.value()->digest, head.value()->media_type));
        } else {
            auto fetched = client->get_manifest(ref.tag(), std::nullopt);
            if (!fetched) {
                return not_found_here(fetched.release_error());
            }
            root.raw = std::move(fetched->raw);
            root.media_type = std::move(fetched->media_type);
            root.digest = fetched->digest;
        }
    }
    Descriptor root_descriptor;
    root_descriptor.media_type = root.media_type;
    root_descriptor.digest = root.digest;
    root_descriptor.size = static_cast<int64_t>(root.raw.size());
    emit(progress, {ProgressKind::Resolved, "", ref.str(), root.digest.str()});

    // 2. The platform manifest.
    auto document = TRY(parse_manifest_document(root.raw, root.media_type)
                            .context(fmt::format("manifest {}", root.digest.str())));
    std::optional<FetchedDocument> child;
    ImageManifest manifest;
    Descriptor manifest_descriptor = root_descriptor;
    if (auto* index = std::get_if<ImageIndex>(&document)) {
        PlatformMatcher matcher(options.platform ? *options.platform : host_platform());
        manifest_descriptor = TRY(select_manifest(*index, matcher).context(ref.str()));
        child = TRY(document_by_digest(store, *client, manifest_descriptor.digest,
                                       manifest_descriptor.media_type));
        manifest = TRY(parse_image_manifest(child->raw, manifest_descriptor.media_type)
                           .context(fmt::format("manifest {}", manifest_descriptor.digest.str())));
    } else {
        manifest = std::get<ImageManifest>(std::move(document));
    }

    // 3. Config and layers, straight into the store.
    if (manifest.config.size > static_cast<int64_t>(kMaxConfigBytes)) {
        return base::data_loss("{}: config {} is {} bytes, over the {}-byte limit", ref.str(),
                               manifest.config.digest.str(), manifest.config.size, kMaxConfigBytes);
    }
    std::vector<Descriptor> blobs;
    blobs.push_back(manifest.config);
    for (const auto& layer : manifest.layers) {
        if (media_types::is_nondistributable(layer.media_type) && !layer.urls.empty()) {
            return base::unsupported(
                "{}: layer {} is a foreign (non-distributable) layer, which locald does not fetch",
                ref.str(), layer.digest.str());
        }
        blobs.push_back(layer);
    }
    PulledImage pulled{ref, root_descriptor, manifest_descriptor, source};
    std::function<void(const Descriptor&)> committed;
    if (options.on_blob_committed) {
        committed = [&](const Descriptor& blob) { options.on_blob_committed(manifest, blob); };
    }
    TRY(fetch_blobs(store, *client, blobs, options.parallel, ref.str(), progress, pulled, committed)
            .context(fmt::format("pulling {}", ref.str())));

    // 4. Manifests last, then the ref: a recorded ref always has its blobs.
    if (child && !store.has(child->digest)) {
        TRY(store.write_blob(child->raw, child->digest));
    }
    if (!store.has(root.digest)) {
        TRY(store.write_blob(root.raw, root.digest));
    }
    RefRecord record;
    record.name = ref.str();
    record.target = root_descriptor;
    record.source = fmt::format("{}@{}", source, root.digest.str());
    TRY(store.set_ref(std::move(record)));
    emit(progress, {ProgressKind::Done, "", ref.str(), root.digest.str(), -1, 0,
                    fmt::format("pulled {} ({}, {} downloaded)", ref.str(), root.digest.str(),
                                human_bytes(pulled.bytes_downloaded))});
    return pulled;
}

bool worth_next_endpoint(const base::Error& error) {
    switch (error.kind()) {
        case base::ErrorKind::NotFound:
        case base::ErrorKind::Unavailable:
        case base::ErrorKind::Unauthenticated:
        case base::ErrorKind::DeadlineExceeded:
            return true;
        default:
            return false;
    }
}

}  // namespace

base::Result<std::string> default_config_dir() {
    auto paths = TRY(base::Paths::from_env());
    return paths.config;
}

base::Result<TransportOptions> default_transport_options(const std::string& config_dir) {
    TransportOptions options;
    options.http = TRY(HttpClient::create(fmt::format("locald/{}", base::kVersion)));
    options.config = TRY(RegistryConfig::load(config_dir));
    options.credential_sources = CredentialSources::from_environment(config_dir);
    return options;
}

base::Result<PulledImage> pull(ContentStore& store, const PullOptions& options,
                               ProgressSink* progress) {
    Reference ref = TRY(Reference::parse(options.reference));
    std::string config_dir =
        options.config_dir.empty() ? TRY(default_config_dir()) : options.config_dir;
    TransportOptions base_options = TRY(default_transport_options(config_dir));
    if (options.http) {
        base_options.http = options.http;
    }
    if (options.retry) {
        base_options.retry = *options.retry;
    }
    if (options.sleep) {
        base_options.sleep = options.sleep;
    }
    if (options.credential_sources) {
        base_options.credential_sources = *options.credential_sources;
    }
    if (options.offline || base_options.config.offline()) {
        return pull_offline(store, ref, options, progress);
    }
    auto endpoints = TRY(base_options.config.pull_endpoints(ref));
    std::optional<base::Error> last;
    for (size_t i = 0; i < endpoints.size(); ++i) {
        auto pulled = pull_from(store, ref, endpoints[i], base_options, options, progress);
        if (pulled) {
            return pulled;
        }
        base::Error error = pulled.release_error();
        bool is_last = i + 1 == endpoints.size();
        if (is_last || !worth_next_endpoint(error)) {
            return error;
        }
        last = std::move(error);
    }
    return *last;
}

}  // namespace locald::oci
