// tests/layers/test_util.h — applying in-memory layers to temp dirs.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "base/error.h"
#include "base/unique_fd.h"
#include "layers/layer_applier.h"

namespace locald::layers::testing {

inline base::Result<ApplyStats> apply_bytes(const std::string& root, const std::string& blob,
                                            ApplyOptions options = {}) {
    base::UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    size_t pos = 0;
    if (options.layer_digest.empty()) {
        options.layer_digest = "sha256:test";
    }
    ReadFn source = [&](char* buffer, size_t size) -> base::Result<size_t> {
        // Small odd chunks exercise the decoders' buffering.
        size_t n = std::min({size, blob.size() - pos, size_t{7001}});
        std::copy(blob.data() + pos, blob.data() + pos + n, buffer);
        pos += n;
        return n;
    };
    return apply_layer(fd.get(), source, options);
}

}  // namespace locald::layers::testing
