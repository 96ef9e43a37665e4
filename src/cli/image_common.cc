#include "cli/image_common.h"

#include <unistd.h>

#include "oci/manifest.h"

namespace locald::cli {

base::Result<oci::ContentStore> open_image_store() {
    return oci::ContentStore::open_default().context("opening the local image store");
}

std::string human_size(int64_t bytes) {
    const char* units[] = {"B", "kB", "MB", "GB", "TB"};
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1000 && unit < 4) {
        value /= 1000;
        ++unit;
    }
    if (unit == 0) {
        return fmt::format("{} B", bytes);
    }
    return fmt::format("{:.1f} {}", value, units[unit]);
}

int64_t stored_size(const oci::ContentStore& store, const oci::Descriptor& root) {
    auto closure = oci::image_closure(store, root, false);
    if (!closure) {
        return 0;
    }
    int64_t total = 0;
    for (const auto& descriptor : *closure) {
        total += descriptor.size;
    }
    return total;
}

base::Json descriptor_json(const oci::Descriptor& descriptor) {
    // The oci module's own serialisation, so the JSON matches index.json.
    auto json = base::Json::parse(oci::serialize_descriptor_json(descriptor));
    return json ? json.release_value() : base::Json();
}

std::unique_ptr<oci::ProgressSink> make_progress_sink(bool json, bool quiet) {
    if (json) {
        return std::make_unique<oci::JsonProgress>(stderr);
    }
    if (quiet) {
        return nullptr;
    }
    if (isatty(STDERR_FILENO)) {
        return std::make_unique<oci::TtyProgress>(stderr);
    }
    return std::make_unique<oci::LineProgress>(stderr);
}

}  // namespace locald::cli
