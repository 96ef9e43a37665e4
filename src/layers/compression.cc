#include "layers/compression.h"

#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <string>
#include <vector>

#ifdef LOCALD_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

namespace locald::layers {

namespace {

constexpr size_t kInputChunk = 256 * 1024;

// Buffered compressed input shared by the decoders: the sniffed head is
// replayed first, then the source is read in large chunks.
class Input {
public:
    Input(ReadFn source, std::string head) : m_source(std::move(source)) {
        m_buffer.resize(std::max(kInputChunk, head.size()));
        std::memcpy(m_buffer.data(), head.data(), head.size());
        m_end = head.size();
    }
    const unsigned char* data() const { return m_buffer.data() + m_begin; }
    size_t size() const { return m_end - m_begin; }
    void consume(size_t n) { m_begin += n; }
    bool eof() const { return m_eof; }
    // Reads more when the buffer is empty. Returns the bytes now available.
    base::Result<size_t> fill(uint64_t* counter) {
        if (size() > 0 || m_eof) {
            return size();
        }
        m_begin = 0;
        m_end = 0;
        size_t n = TRY(m_source(reinterpret_cast<char*>(m_buffer.data()), m_buffer.size()));
        if (n == 0) {
            m_eof = true;
        }
        m_end = n;
        *counter += n;
        return n;
    }

private:
    ReadFn m_source;
    std::vector<unsigned char> m_buffer;
    size_t m_begin = 0;
    size_t m_end = 0;
    bool m_eof = false;
};

base::Result<void> check_limit(uint64_t produced, uint64_t limit) {
    if (limit != 0 && produced > limit) {
        return base::data_loss("uncompressed layer exceeds the {}-byte limit", limit);
    }
    return base::ok();
}

class PlainDecompressor final : public Decompressor {
public:
    PlainDecompressor(Input input, uint64_t limit) : m_in(std::move(input)) {
        m_max_output = limit;
    }
    base::Result<size_t> read(char* buffer, size_t size) override {
        size_t available = TRY(m_in.fill(&m_input));
        if (available == 0) {
            return size_t{0};
        }
        size_t n = std::min(available, size);
        std::memcpy(buffer, m_in.data(), n);
        m_in.consume(n);
        m_output += n;
        TRY(check_limit(m_output, m_max_output));
        return n;
    }
    Compression compression() const override { return Compression::None; }

private:
    Input m_in;
};

// One inflate call of a gzip decoder on the given input and output.
struct InflateStep {
    size_t consumed = 0;
    size_t produced = 0;
    bool member_end = false;  // the end of one gzip member (CRC and size checked)
};

#ifdef LOCALD_HAVE_ISAL
// ISA-L igzip (several times faster than zlib on x86).
class IsalInflater {
public:
    IsalInflater() { reset(); }
    bool ok() const { return true; }
    void reset() {
        isal_inflate_init(&m_state);
        m_state.crc_flag = ISAL_GZIP;
    }
    base::Result<InflateStep> inflate(const unsigned char* in, size_t in_size, char* out,
                                      size_t out_size, uint64_t input_so_far) {
        m_state.next_in = const_cast<uint8_t*>(in);
        m_state.avail_in = static_cast<uint32_t>(std::min<size_t>(in_size, UINT32_MAX));
        m_state.next_out = reinterpret_cast<uint8_t*>(out);
        m_state.avail_out = static_cast<uint32_t>(std::min<size_t>(out_size, UINT32_MAX));
        uint32_t before_in = m_state.avail_in;
        uint32_t before_out = m_state.avail_out;
        int rc = isal_inflate(&m_state);
        if (rc < 0) {
            return base::data_loss("corrupt gzip stream (igzip error {}) after {} compressed bytes",
                                   rc, input_so_far);
        }
        return InflateStep{before_in - m_state.avail_in, before_out - m_state.avail_out,
                           m_state.block_state == ISAL_BLOCK_FINISH};
    }

private:
    inflate_state m_state{};
};
using GzipInflater = IsalInflater;
#else
class ZlibInflater {
public:
    ZlibInflater() {
        std::memset(&m_stream, 0, sizeof(m_stream));
        // 16 + MAX_WBITS: gzip wrapper only, header and CRC checked.
        m_ok = inflateInit2(&m_stream, 16 + MAX_WBITS) == Z_OK;
    }
    ZlibInflater(const ZlibInflater&) = delete;
    ZlibInflater& operator=(const ZlibInflater&) = delete;
    ~ZlibInflater() {
        if (m_ok) {
            inflateEnd(&m_stream);
        }
    }
    bool ok() const { return m_ok; }
    void reset() { inflateReset(&m_stream); }
    base::Result<InflateStep> inflate(const unsigned char* in, size_t in_size, char* out,
                                      size_t out_size, uint64_t input_so_far) {
        m_stream.next_in = const_cast<Bytef*>(in);
        m_stream.avail_in = static_cast<uInt>(std::min<size_t>(in_size, UINT32_MAX));
        m_stream.next_out = reinterpret_cast<Bytef*>(out);
        m_stream.avail_out = static_cast<uInt>(std::min<size_t>(out_size, UINT32_MAX));
        uInt before_in = m_stream.avail_in;
        uInt before_out = m_stream.avail_out;
        int rc = ::inflate(&m_stream, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) {
            return base::data_loss("corrupt gzip stream ({}) after {} compressed bytes",
                                   m_stream.msg ? m_stream.msg : "zlib error", input_so_far);
        }
        return InflateStep{before_in - m_stream.avail_in, before_out - m_stream.avail_out,
                           rc == Z_STREAM_END};
    }

private:
    z_stream m_stream;
    bool m_ok = false;
};
using GzipInflater = ZlibInflater;
#endif

// The gzip reader loop, shared by both inflaters: multi-member streams,
// truncation and the output limit.
template <typename Inflater>
class GzipReader final : public Decompressor {
public:
    GzipReader(Input input, uint64_t limit) : m_in(std::move(input)) { m_max_output = limit; }
    base::Result<size_t> read(char* buffer, size_t size) override {
        if (!m_inflater.ok()) {
            return base::internal_error("initialising the gzip decoder failed");
        }
        if (m_done) {
            return size_t{0};
        }
        while (true) {
            if (m_member_finished) {
                // End of one gzip member: another may follow (multi-member
                // streams are valid gzip, e.g. from pigz or concatenation).
                size_t available = TRY(m_in.fill(&m_input));
                if (available == 0) {
                    m_done = true;
                    return size_t{0};
                }
                m_inflater.reset();
                m_member_finished = false;
            }
            size_t available = TRY(m_in.fill(&m_input));
            if (available == 0) {
                return base::data_loss("truncated gzip stream after {} compressed bytes", m_input);
            }
            auto step = TRY(m_inflater.inflate(m_in.data(), available, buffer, size, m_input));
            m_in.consume(step.consumed);
            m_member_finished = step.member_end;
            if (step.produced > 0) {
                m_output += step.produced;
                TRY(check_limit(m_output, m_max_output));
                return step.produced;
            }
        }
    }
    Compression compression() const override { return Compression::Gzip; }

private:
    Input m_in;
    Inflater m_inflater;
    bool m_done = false;
    bool m_member_finished = false;
};
using GzipDecompressor = GzipReader<GzipInflater>;

class ZstdDecompressor final : public Decompressor {
public:
    ZstdDecompressor(Input input, uint64_t limit)
        : m_in(std::move(input)), m_stream(ZSTD_createDStream()) {
        m_max_output = limit;
        // Caps the window a hostile frame can make us allocate (128 MiB, the
        // zstd CLI's --long default maximum).
        ZSTD_DCtx_setParameter(m_stream, ZSTD_d_windowLogMax, 27);
    }
    ~ZstdDecompressor() override { ZSTD_freeDStream(m_stream); }
    base::Result<size_t> read(char* buffer, size_t size) override {
        if (m_stream == nullptr) {
            return base::internal_error("ZSTD_createDStream failed");
        }
        while (true) {
            size_t available = TRY(m_in.fill(&m_input));
            if (available == 0) {
                if (m_frame_open) {
                    return base::data_loss("truncated zstd stream after {} compressed bytes",
                                           m_input);
                }
                return size_t{0};
            }
            ZSTD_inBuffer in{m_in.data(), available, 0};
            ZSTD_outBuffer out{buffer, size, 0};
            size_t rc = ZSTD_decompressStream(m_stream, &out, &in);
            m_in.consume(in.pos);
            if (ZSTD_isError(rc)) {
                return base::data_loss("corrupt zstd stream ({}) after {} compressed bytes",
                                       ZSTD_getErrorName(rc), m_input);
            }
            // rc == 0: a frame ended and everything was flushed.
            m_frame_open = rc != 0;
            if (out.pos > 0) {
                m_output += out.pos;
                TRY(check_limit(m_output, m_max_output));
                return out.pos;
            }
        }
    }
    Compression compression() const override { return Compression::Zstd; }

private:
    Input m_in;
    ZSTD_DStream* m_stream;
    bool m_frame_open = false;
};

}  // namespace

std::string_view to_string(Compression compression) {
    switch (compression) {
        case Compression::None:
            return "none";
        case Compression::Gzip:
            return "gzip";
        case Compression::Zstd:
            return "zstd";
    }
    return "unknown";
}

Compression sniff_compression(std::string_view head) {
    auto byte = [&](size_t i) { return static_cast<unsigned char>(head[i]); };
    if (head.size() >= 2 && byte(0) == 0x1f && byte(1) == 0x8b) {
        return Compression::Gzip;
    }
    if (head.size() >= 4) {
        uint32_t magic = byte(0) | (byte(1) << 8) | (byte(2) << 16) | (uint32_t{byte(3)} << 24);
        if (magic == 0xFD2FB528u || (magic & 0xFFFFFFF0u) == 0x184D2A50u) {
            return Compression::Zstd;
        }
    }
    return Compression::None;
}

bool gzip_uses_isal() {
#ifdef LOCALD_HAVE_ISAL
    return true;
#else
    return false;
#endif
}

base::Result<std::unique_ptr<Decompressor>> Decompressor::create(ReadFn source,
                                                                 uint64_t max_output_bytes) {
    // Read the 4 magic bytes (short reads from pipes are fine).
    std::string head(4, '\0');
    size_t got = 0;
    while (got < head.size()) {
        size_t n = TRY(source(head.data() + got, head.size() - got));
        if (n == 0) {
            break;
        }
        got += n;
    }
    head.resize(got);
    Compression kind = sniff_compression(head);
    uint64_t consumed = got;
    Input input(std::move(source), std::move(head));
    std::unique_ptr<Decompressor> result;
    switch (kind) {
        case Compression::None:
            result = std::make_unique<PlainDecompressor>(std::move(input), max_output_bytes);
            break;
        case Compression::Gzip:
            result = std::make_unique<GzipDecompressor>(std::move(input), max_output_bytes);
            break;
        case Compression::Zstd:
            result = std::make_unique<ZstdDecompressor>(std::move(input), max_output_bytes);
            break;
    }
    result->m_input = consumed;
    return result;
}

}  // namespace locald::layers
