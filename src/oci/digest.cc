#include "oci/digest.h"

#include <openssl/evp.h>

#include <cstdlib>

namespace locald::oci {

namespace {

size_t hex_length(DigestAlgorithm algorithm) {
    return algorithm == DigestAlgorithm::Sha256 ? 64 : 128;
}

const EVP_MD* evp_for(DigestAlgorithm algorithm) {
    return algorithm == DigestAlgorithm::Sha256 ? EVP_sha256() : EVP_sha512();
}

bool is_lower_hex(std::string_view text) {
    for (char c : text) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

}  // namespace

std::string_view to_string(DigestAlgorithm algorithm) {
    return algorithm == DigestAlgorithm::Sha256 ? "sha256" : "sha512";
}

base::Result<Digest> Digest::parse(std::string_view text) {
    auto colon = text.find(':');
    if (colon == std::string_view::npos) {
        return base::invalid_argument("invalid digest `{}`: expected `algorithm:hex`", text);
    }
    std::string_view algorithm_name = text.substr(0, colon);
    std::string_view hex = text.substr(colon + 1);
    DigestAlgorithm algorithm;
    if (algorithm_name == "sha256") {
        algorithm = DigestAlgorithm::Sha256;
    } else if (algorithm_name == "sha512") {
        algorithm = DigestAlgorithm::Sha512;
    } else {
        return base::invalid_argument(
            "invalid digest `{}`: unsupported algorithm `{}` (sha256 or sha512)", text,
            algorithm_name);
    }
    if (hex.size() != hex_length(algorithm)) {
        return base::invalid_argument("invalid digest `{}`: {} needs {} hex characters, got {}",
                                      text, algorithm_name, hex_length(algorithm), hex.size());
    }
    if (!is_lower_hex(hex)) {
        return base::invalid_argument(
            "invalid digest `{}`: the hex part must be lowercase [0-9a-f]", text);
    }
    return Digest(algorithm, std::string(hex));
}

base::Result<Digest> Digest::from_sha256_hex(std::string_view hex) {
    return parse(fmt::format("sha256:{}", hex));
}

Digest Digest::sha256_of(std::string_view data) {
    return of(DigestAlgorithm::Sha256, data);
}

Digest Digest::of(DigestAlgorithm algorithm, std::string_view data) {
    Digester digester(algorithm);
    digester.update(data);
    return digester.digest();
}

std::string Digest::str() const {
    if (empty()) {
        return {};
    }
    return fmt::format("{}:{}", algorithm_name(), m_hex);
}

std::string Digest::short_str() const {
    return fmt::format("{}:{}", algorithm_name(), m_hex.substr(0, 12));
}

std::string Digest::layout_path() const {
    return fmt::format("blobs/{}/{}", algorithm_name(), m_hex);
}

struct Digester::State {
    EVP_MD_CTX* context = nullptr;
    ~State() { EVP_MD_CTX_free(context); }
};

Digester::Digester(DigestAlgorithm algorithm)
    : m_algorithm(algorithm), m_state(std::make_unique<State>()) {
    m_state->context = EVP_MD_CTX_new();
    if (m_state->context == nullptr ||
        EVP_DigestInit_ex(m_state->context, evp_for(algorithm), nullptr) != 1) {
        // Only an allocation failure gets here; nothing sensible can continue.
        std::abort();
    }
}

Digester::~Digester() = default;
Digester::Digester(Digester&&) noexcept = default;
Digester& Digester::operator=(Digester&&) noexcept = default;

void Digester::update(std::string_view data) {
    update(data.data(), data.size());
}

void Digester::update(const void* data, size_t size) {
    if (size == 0) {
        return;
    }
    EVP_DigestUpdate(m_state->context, data, size);
    m_bytes += size;
}

Digest Digester::digest() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(m_state->context, out, &length);
    static const char kHex[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(length * 2);
    for (unsigned int i = 0; i < length; ++i) {
        hex.push_back(kHex[out[i] >> 4]);
        hex.push_back(kHex[out[i] & 0xf]);
    }
    // Re-arm so a stray update() after digest() cannot touch a finalised context.
    EVP_DigestInit_ex(m_state->context, evp_for(m_algorithm), nullptr);
    return Digest(m_algorithm, std::move(hex));
}

}  // namespace locald::oci
