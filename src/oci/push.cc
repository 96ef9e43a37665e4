#include "oci/push.h"

#include <atomic>
#include <mutex>
#include <thread>

#include "oci/image.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/pull.h"
#include "oci/registry_client.h"

namespace locald::oci {

namespace {

void emit(ProgressSink* sink, ProgressEvent event) {
    if (sink) {
        event.operation = "push";
        sink->on_event(event);
    }
}

// The repository an image came from, when that was `host` (for mounts).
std::string mount_source(const ContentStore& store, const Reference& local,
                         const std::string& host) {
    auto record = store.get_ref(local.str());
    if (!record || !record.value()) {
        return "";
    }
    std::string source = record.value()->source;  // "host/repo@sha256:…"
    source = source.substr(0, source.find('@'));
    if (!source.starts_with(host + "/")) {
        return "";
    }
    return source.substr(host.size() + 1);
}

}  // namespace

base::Result<std::string> normalise_registry(std::string_view text) {
    for (std::string_view scheme : {"https://", "http://"}) {
        if (text.starts_with(scheme)) {
            text.remove_prefix(scheme.size());
        }
    }
    std::string host(text.substr(0, text.find('/')));
    if (host.empty() || host.find_first_of(" \t@") != std::string::npos) {
        return base::invalid_argument("invalid registry `{}` (expected host[:port])", text);
    }
    if (host == "index.docker.io" || host == "registry-1.docker.io") {
        host = "docker.io";
    }
    return host;
}

base::Result<PushedImage> push(const ContentStore& store, const PushOptions& options,
                               ProgressSink* progress) {
    Reference local = TRY(Reference::parse(options.local_reference));
    Reference remote =
        options.remote_reference.empty() ? local : TRY(Reference::parse(options.remote_reference));
    std::string config_dir =
        options.config_dir.empty() ? TRY(default_config_dir()) : options.config_dir;
    TransportOptions transport = TRY(default_transport_options(config_dir));
    if (options.retry) {
        transport.retry = *options.retry;
    }
    if (options.sleep) {
        transport.sleep = options.sleep;
    }
    if (transport.config.offline()) {
        return base::failed_precondition("cannot push: `offline = true` in config.toml");
    }

    Descriptor root = TRY(store.resolve(local));
    auto closure = TRY(image_closure(store, root, true).context(local.str()));
    if (media_types::is_index(root.media_type)) {
        auto raw = TRY(store.read_blob(root.digest, kMaxManifestBytes, root.size));
        auto index = TRY(parse_image_index(std::move(raw), root.media_type));
        for (const auto& child : index.manifests) {
            if (!store.has(child.digest)) {
                return base::failed_precondition(
                    "cannot push {}: manifest {} ({}) of the index is not in the local store "
                    "(pull all its platforms first)",
                    local.str(), child.digest.str(),
                    child.platform ? child.platform->str() : "no platform");
            }
        }
    }

    Endpoint endpoint = TRY(transport.config.push_endpoint(remote));
    auto client = TRY(RegistryClient::create(endpoint, std::move(transport), true));
    client->set_monolithic_limit(options.monolithic_limit);
    client->set_chunk_size(options.chunk_size);
    std::string target = fmt::format("{}/{}", endpoint.host, endpoint.repository);
    emit(progress, {ProgressKind::Resolving, "", remote.str(), "", -1, 0, target});
    std::string mount_from = mount_source(store, local, endpoint.host);
    if (mount_from == endpoint.repository) {
        mount_from.clear();
    }

    PushedImage pushed{remote, root.digest};
    std::vector<Descriptor> manifests;  // in closure order: root first
    std::vector<Descriptor> blobs;
    for (const auto& descriptor : closure) {
        if (media_types::is_index(descriptor.media_type) ||
            media_types::is_manifest(descriptor.media_type)) {
            manifests.push_back(descriptor);
        } else {
            blobs.push_back(descriptor);
        }
    }

    // Blobs in parallel (like pull); the first error stops new work.
    std::mutex mutex;
    std::optional<base::Error> first_error;
    std::atomic<size_t> next{0};
    auto push_blob = [&](const Descriptor& descriptor) -> base::Result<void> {
        std::string digest = descriptor.digest.str();
        if (TRY(client->blob_exists(descriptor.digest))) {
            std::lock_guard lock(mutex);
            ++pushed.blobs_present;
            emit(progress, {ProgressKind::LayerSkip, "", remote.str(), digest, descriptor.size,
                            descriptor.size, "already in the registry"});
            return base::ok();
        }
        if (!mount_from.empty() && TRY(client->mount_blob(descriptor.digest, mount_from))) {
            std::lock_guard lock(mutex);
            ++pushed.blobs_mounted;
            emit(progress, {ProgressKind::LayerSkip, "", remote.str(), digest, descriptor.size,
                            descriptor.size, "mounted from " + mount_from});
            return base::ok();
        }
        emit(progress, {ProgressKind::LayerStart, "", remote.str(), digest, descriptor.size, 0});
        auto fd = TRY(store.open_blob(descriptor.digest));
        TRY(client->upload_blob(
            descriptor.digest, descriptor.size, fd.get(), [&](int64_t done, int64_t total) {
                emit(progress, {ProgressKind::LayerBytes, "", remote.str(), digest, total, done});
            }));
        std::lock_guard lock(mutex);
        ++pushed.blobs_uploaded;
        pushed.bytes_uploaded += descriptor.size;
        emit(progress,
             {ProgressKind::LayerDone, "", remote.str(), digest, descriptor.size, descriptor.size});
        return base::ok();
    };
    auto worker = [&] {
        while (true) {
            {
                std::lock_guard lock(mutex);
                if (first_error) {
                    return;
                }
            }
            size_t index = next.fetch_add(1);
            if (index >= blobs.size()) {
                return;
            }
            auto result = push_blob(blobs[index]);
            if (!result) {
                std::lock_guard lock(mutex);
                if (!first_error) {
                    first_error = result.release_error();
                }
                return;
            }
        }
    };
    size_t workers = std::min<size_t>(std::max(options.parallel, 1), blobs.size());
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
        return std::move(first_error->context(fmt::format("pushing {}", remote.str())));
    }
    // The closure lists the root first: push children (by digest) before it.
    for (auto it = manifests.rbegin(); it != manifests.rend(); ++it) {
        const Descriptor& descriptor = *it;
        std::string raw =
            TRY(store.read_blob(descriptor.digest, kMaxManifestBytes, descriptor.size));
        bool is_root = descriptor.digest == root.digest;
        std::string reference = is_root && !remote.has_digest() && !remote.tag().empty()
                                    ? remote.tag()
                                    : descriptor.digest.str();
        Digest digest = TRY(client->put_manifest(reference, raw, descriptor.media_type)
                                .context(fmt::format("pushing {}", remote.str())));
        if (digest != descriptor.digest) {
            return base::data_loss("pushing {}: manifest {} hashed to {} on the way", remote.str(),
                                   descriptor.digest.str(), digest.str());
        }
    }
    emit(progress, {ProgressKind::Done, "", remote.str(), root.digest.str(), -1, 0,
                    fmt::format("pushed {} ({}; {} uploaded, {} mounted, {} already there)",
                                remote.str(), root.digest.str(), pushed.blobs_uploaded,
                                pushed.blobs_mounted, pushed.blobs_present)});
    return pushed;
}

base::Result<void> login(const std::string& config_dir, const std::string& registry_text,
                         const Credentials& credentials) {
    std::string registry = TRY(normalise_registry(registry_text));
    TransportOptions options = TRY(default_transport_options(config_dir));
    options.credentials = credentials;
    Endpoint endpoint;
    endpoint.host = registry == "docker.io" ? std::string(kDockerHubApiHost) : registry;
    auto transport = TRY(RegistryTransport::create(endpoint, std::move(options)));
    TransportRequest request;
    request.path = "/v2/";
    HttpResponse response =
        TRY(transport->send_retrying(request).context(fmt::format("logging in to `{}`", registry)));
    if (!response.ok()) {
        return transport_failure(response, fmt::format("logging in to `{}`", registry), registry);
    }
    if (response.status == 401 || response.status == 403) {
        return base::unauthenticated("logging in to `{}`: the registry rejected the credentials",
                                     registry);
    }
    if (response.status != 200) {
        return http_status_error(response, fmt::format("logging in to `{}`", registry), registry);
    }
    return store_credentials(config_dir + "/auth.json", registry, credentials);
}

base::Result<void> logout(const std::string& config_dir, const std::string& registry_text) {
    std::string registry = TRY(normalise_registry(registry_text));
    bool removed = TRY(erase_credentials(config_dir + "/auth.json", registry));
    if (!removed) {
        return base::not_found("not logged in to `{}`", registry);
    }
    return base::ok();
}

}  // namespace locald::oci
