#include "oci/image.h"

#include <set>

#include "oci/media_types.h"

namespace locald::oci {

namespace {

base::Result<std::string> read_document(const ContentStore& store, const Descriptor& descriptor,
                                        size_t cap, std::string_view what) {
    if (!store.has(descriptor.digest)) {
        return base::not_found("{} `{}` is not cached in the local store", what,
                               descriptor.digest.str());
    }
    if (descriptor.size > static_cast<int64_t>(cap)) {
        return base::invalid_argument("{} `{}` is {} bytes, more than the {}-byte limit", what,
                                      descriptor.digest.str(), descriptor.size, cap);
    }
    return store.read_blob(descriptor.digest, cap, descriptor.size);
}

}  // namespace

base::Result<ResolvedImage> resolve_image(const ContentStore& store, const Reference& ref,
                                          const std::optional<Platform>& platform) {
    ResolvedImage image{.ref = ref};
    image.root = TRY(store.resolve(ref));
    image.manifest_descriptor = image.root;
    if (media_types::is_index(image.root.media_type)) {
        std::string raw =
            TRY(read_document(store, image.root, kMaxManifestBytes, "index").context(ref.str()));
        image.index =
            TRY(parse_image_index(std::move(raw), image.root.media_type).context(ref.str()));
        PlatformMatcher matcher(platform ? *platform : host_platform());
        image.manifest_descriptor = TRY(select_manifest(*image.index, matcher).context(ref.str()));
        if (!store.has(image.manifest_descriptor.digest)) {
            return base::not_found(
                "not found: {} for platform {} in the local store (manifest `{}` is not cached)",
                ref.str(), matcher.wanted().str(), image.manifest_descriptor.digest.str());
        }
    } else if (!media_types::is_manifest(image.root.media_type)) {
        return base::unsupported("{}: `{}` is not an image (media type `{}`)", ref.str(),
                                 image.root.digest.str(), image.root.media_type);
    }
    std::string raw =
        TRY(read_document(store, image.manifest_descriptor, kMaxManifestBytes, "manifest")
                .context(ref.str()));
    image.manifest = TRY(parse_image_manifest(std::move(raw), image.manifest_descriptor.media_type)
                             .context(ref.str()));
    std::string config_raw = TRY(
        read_document(store, image.manifest.config, kMaxConfigBytes, "config").context(ref.str()));
    image.config = TRY(parse_image_config(std::move(config_raw)).context(ref.str()));
    if (image.config.diff_ids.size() != image.manifest.layers.size()) {
        return base::invalid_argument(
            "{}: the manifest has {} layers but the config lists {} diff_ids", ref.str(),
            image.manifest.layers.size(), image.config.diff_ids.size());
    }
    return image;
}

base::Result<std::vector<Descriptor>> image_closure(const ContentStore& store,
                                                    const Descriptor& root, bool require_present) {
    std::vector<Descriptor> out;
    std::set<Digest> seen;
    // (descriptor, optional: true when it is an index child a partial pull may lack)
    std::vector<std::pair<Descriptor, bool>> pending{{root, false}};
    auto missing = [&](const Descriptor& descriptor) -> base::Error {
        return base::not_found("blob `{}` ({}) is not cached in the local store",
                               descriptor.digest.str(), descriptor.media_type);
    };
    while (!pending.empty()) {
        auto [descriptor, optional] = std::move(pending.back());
        pending.pop_back();
        if (seen.contains(descriptor.digest)) {
            continue;
        }
        if (!store.has(descriptor.digest)) {
            if (optional) {
                continue;  // one platform of a multi-platform image was pulled
            }
            if (require_present) {
                return missing(descriptor);
            }
            continue;
        }
        seen.insert(descriptor.digest);
        out.push_back(descriptor);
        if (media_types::is_index(descriptor.media_type)) {
            auto raw = TRY(store.read_blob(descriptor.digest, kMaxManifestBytes, descriptor.size));
            auto index = TRY(parse_image_index(std::move(raw), descriptor.media_type));
            for (auto it = index.manifests.rbegin(); it != index.manifests.rend(); ++it) {
                pending.push_back({*it, true});
            }
        } else if (media_types::is_manifest(descriptor.media_type)) {
            auto raw = TRY(store.read_blob(descriptor.digest, kMaxManifestBytes, descriptor.size));
            auto manifest = TRY(parse_image_manifest(std::move(raw), descriptor.media_type));
            for (auto it = manifest.layers.rbegin(); it != manifest.layers.rend(); ++it) {
                if (media_types::is_nondistributable(it->media_type) && !store.has(it->digest)) {
                    continue;  // foreign layers are fetched from their urls, never stored
                }
                pending.push_back({*it, false});
            }
            pending.push_back({manifest.config, false});
        }
    }
    return out;
}

}  // namespace locald::oci
