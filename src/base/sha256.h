// base/sha256.h — SHA-256 over OpenSSL EVP, streaming.
//
// Contract: `Sha256` hashes what is fed to update(); hex_digest()/digest()
// may be called at any point (they hash a copy of the state), so a stream
// can be checked mid-way (Range resume) and then continued. Hex is lower
// case, 64 characters, without the "sha256:" prefix.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/hex.h"
#include "base/unique_handle.h"

struct evp_md_ctx_st;

namespace locald::base {

class Sha256 {
public:
    static constexpr size_t kDigestSize = 32;
    using Digest = std::array<uint8_t, kDigestSize>;

    // Aborts only if OpenSSL cannot allocate a context (out of memory).
    Sha256();
    Sha256(Sha256&&) noexcept = default;
    Sha256& operator=(Sha256&&) noexcept = default;

    void update(std::string_view data);
    void update(const void* data, size_t size);

    // Bytes fed so far.
    uint64_t size() const { return m_size; }

    Digest digest() const;
    std::string hex_digest() const;

    // Back to the empty state.
    void reset();

private:
    static void free_context(evp_md_ctx_st* context);
    UniqueHandle<evp_md_ctx_st*, &Sha256::free_context> m_context;
    uint64_t m_size = 0;
};

// SHA-256 of `data`, lower-case hex.
std::string sha256_hex(std::string_view data);

// SHA-256 of everything read from `fd` (from its current offset to EOF).
Result<std::string> sha256_fd_hex(int fd);

}  // namespace locald::base
