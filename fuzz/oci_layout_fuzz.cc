// fuzz/oci_layout_fuzz.cc — `locald image load` of a tar: an OCI image
// layout (oci-layout, index.json, blobs/) or a `docker save` archive
// (manifest.json), through oci::import_layout. Member-name checks (absolute,
// `..`, links), the choice between the two formats, index.json, and digest
// and size verification before anything enters the store. The input is the
// tar itself (gzip and zstd are accepted too); the store is recreated per
// input.
#include <fcntl.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "common.h"
#include "oci/layout.h"
#include "oci/store.h"

using namespace locald;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string& scratch = locald_fuzz::scratch_dir("layout");
    std::string tar = scratch + "/in.tar";
    {
        auto fd = base::open_file(tar, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (!fd || !base::write_all(fd->get(),
                                    std::string_view(reinterpret_cast<const char*>(data), size))) {
            abort();
        }
    }
    std::string dir = scratch + "/data";
    (void)base::remove_all(dir);
    auto store = oci::ContentStore::open(dir);
    if (!store) {
        abort();
    }
    auto imported = oci::import_layout(*store, tar);
    if (!imported && imported.error().message().empty()) {
        abort();
    }
    if (getenv("LOCALD_FUZZ_VERBOSE") != nullptr) {
        fprintf(stderr, "%s\n",
                imported ? ("ok, " + std::to_string(imported->size()) + " images").c_str()
                         : imported.error().to_string().c_str());
    }
    return 0;
}
