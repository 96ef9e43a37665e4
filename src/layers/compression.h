// layers/compression.h — streaming decompression of layer blobs.
//
// Contract: the compression of a layer is sniffed from its first bytes
// (gzip 1f 8b, zstd 28 b5 2f fd or a skippable frame, anything else plain),
// never trusted from the media type. gzip goes through ISA-L's igzip when
// locald was built with it (LOCALD_HAVE_ISAL), zlib otherwise; zstd through
// libzstd. Everything runs in-process: no decompressor binary is ever
// executed (CVE-2014-9357, GHSA-x86f-5xw2-fm2r). A corrupt stream, a bad
// checksum, trailing garbage or a truncated stream is DataLoss. The output is
// capped (`max_output_bytes`) so a decompression bomb stops with an error.
// Depends on base only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "base/error.h"

namespace locald::layers {

enum class Compression { None, Gzip, Zstd };
std::string_view to_string(Compression compression);

// Looks at up to the first 4 bytes of a stream.
Compression sniff_compression(std::string_view head);

// Reads up to `size` bytes into `buffer`; 0 means end of stream.
using ReadFn = std::function<base::Result<size_t>(char* buffer, size_t size)>;

// True when gzip inflate uses ISA-L.
bool gzip_uses_isal();

class Decompressor {
public:
    virtual ~Decompressor() = default;
    // Sniffs the source and returns the matching decoder. `max_output_bytes`
    // of 0 means unlimited.
    static base::Result<std::unique_ptr<Decompressor>> create(ReadFn source,
                                                              uint64_t max_output_bytes = 0);
    // Fills up to `size` bytes of uncompressed data; 0 at the end of the
    // stream (after the last frame's checksum was verified).
    virtual base::Result<size_t> read(char* buffer, size_t size) = 0;
    virtual Compression compression() const = 0;
    // Uncompressed bytes produced so far.
    uint64_t output_bytes() const { return m_output; }
    // Compressed bytes consumed from the source so far.
    uint64_t input_bytes() const { return m_input; }

protected:
    uint64_t m_output = 0;
    uint64_t m_input = 0;
    uint64_t m_max_output = 0;
};

}  // namespace locald::layers
