// fuzz/layer_fuzz.cc — raw bytes as a layer blob through layers::apply_layer
// (layer_common.h): compression sniffing and decoding (gzip incl. multi-
// member, zstd, plain), libarchive's tar reader (ustar, PAX records, GNU long
// names/links, sparse entries, numeric fields) and everything the applier
// does with what it reads. libarchive is not instrumented, so coverage
// guides only through locald's code; layer_entries_fuzz complements this
// with well-formed tars built from a structured description.
#include <cstdint>
#include <string_view>

#include "layer_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    locald_fuzz::apply_everywhere(std::string_view(reinterpret_cast<const char*>(data), size));
    return 0;
}
