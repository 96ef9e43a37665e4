// oci/image.h — a stored image, resolved down to one platform.
//
// Contract: resolve_image() reads only the local store (never the network),
// so it is what `--offline`, `image inspect`, the layers unpacker and the
// launcher use. Every document read is size-capped and digest-verified.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "oci/descriptor.h"
#include "oci/manifest.h"
#include "oci/platform.h"
#include "oci/reference.h"
#include "oci/store.h"

namespace locald::oci {

struct ResolvedImage {
    Reference ref;
    Descriptor root;                  // what the ref points at (manifest or index)
    std::optional<ImageIndex> index;  // set when root is an index
    Descriptor manifest_descriptor;   // the chosen manifest
    ImageManifest manifest;
    ImageConfig config;
};

// Resolves `ref` in the store and, for an index, picks the manifest for
// `platform` (host when nullopt). NotFound names what is missing (the ref,
// or the blob that is not cached).
base::Result<ResolvedImage> resolve_image(const ContentStore& store, const Reference& ref,
                                          const std::optional<Platform>& platform = std::nullopt);

// Every blob an image root needs (the root, child manifests, configs,
// layers), for all platforms; `require_present` makes a missing one NotFound.
base::Result<std::vector<Descriptor>> image_closure(const ContentStore& store,
                                                    const Descriptor& root,
                                                    bool require_present = true);

}  // namespace locald::oci
