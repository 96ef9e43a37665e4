// oci/digest.h — content digests (`sha256:<64 hex>`, `sha512:<128 hex>`).
//
// Contract: a Digest value is always valid once constructed through parse()
// or a Digester, so it is safe to build store paths from it (CVE-2024-3727:
// unvalidated digests became path traversal). Only lowercase hex is accepted,
// exactly as the OCI image-spec registered algorithms require. Depends on
// base and OpenSSL (private).
#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"

namespace locald::oci {

enum class DigestAlgorithm { Sha256, Sha512 };

std::string_view to_string(DigestAlgorithm algorithm);

class Digest {
public:
    // An empty digest (empty() is true). Only useful as a "not set" value.
    Digest() = default;

    // Parses `algorithm:hex`. InvalidArgument names what is wrong (unknown
    // algorithm, wrong length, non-lowercase-hex).
    static base::Result<Digest> parse(std::string_view text);
    // `hex` must be 64 lowercase hex characters.
    static base::Result<Digest> from_sha256_hex(std::string_view hex);
    // The sha256 digest of `data` (one shot).
    static Digest sha256_of(std::string_view data);
    static Digest of(DigestAlgorithm algorithm, std::string_view data);

    bool empty() const { return m_hex.empty(); }
    DigestAlgorithm algorithm() const { return m_algorithm; }
    std::string_view algorithm_name() const { return to_string(m_algorithm); }
    const std::string& hex() const { return m_hex; }
    // `sha256:…`
    std::string str() const;
    // `sha256:` plus the first 12 hex characters, for human output.
    std::string short_str() const;
    // Relative path inside an OCI layout: `blobs/sha256/<hex>`.
    std::string layout_path() const;

    friend bool operator==(const Digest&, const Digest&) = default;
    friend auto operator<=>(const Digest&, const Digest&) = default;

private:
    Digest(DigestAlgorithm algorithm, std::string hex)
        : m_algorithm(algorithm), m_hex(std::move(hex)) {}
    friend class Digester;

    DigestAlgorithm m_algorithm = DigestAlgorithm::Sha256;
    std::string m_hex;
};

// Streaming hash: update() any number of times, then digest() once.
class Digester {
public:
    explicit Digester(DigestAlgorithm algorithm = DigestAlgorithm::Sha256);
    ~Digester();
    Digester(Digester&&) noexcept;
    Digester& operator=(Digester&&) noexcept;
    Digester(const Digester&) = delete;
    Digester& operator=(const Digester&) = delete;

    void update(std::string_view data);
    void update(const void* data, size_t size);
    // Finalizes; the Digester must not be updated afterwards.
    Digest digest();
    DigestAlgorithm algorithm() const { return m_algorithm; }
    uint64_t bytes() const { return m_bytes; }

private:
    struct State;
    DigestAlgorithm m_algorithm;
    std::unique_ptr<State> m_state;
    uint64_t m_bytes = 0;
};

}  // namespace locald::oci

template <>
struct fmt::formatter<locald::oci::Digest> : fmt::formatter<std::string_view> {
    auto format(const locald::oci::Digest& digest, format_context& ctx) const {
        return fmt::formatter<std::string_view>::format(digest.str(), ctx);
    }
};

template <>
struct std::hash<locald::oci::Digest> {
    size_t operator()(const locald::oci::Digest& digest) const noexcept {
        return std::hash<std::string>()(digest.hex());
    }
};
