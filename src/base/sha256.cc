#include "base/sha256.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <cstdlib>

namespace locald::base {

namespace {

EVP_MD_CTX* new_context() {
    EVP_MD_CTX* context = EVP_MD_CTX_new();
    // Only allocation can fail here; like operator new, that is fatal.
    if (context == nullptr || EVP_DigestInit_ex(context, EVP_sha256(), nullptr) != 1) {
        std::abort();
    }
    return context;
}

}  // namespace

void Sha256::free_context(evp_md_ctx_st* context) {
    EVP_MD_CTX_free(context);
}

Sha256::Sha256() : m_context(new_context()) {}

void Sha256::update(std::string_view data) {
    update(data.data(), data.size());
}

void Sha256::update(const void* data, size_t size) {
    if (size == 0) {
        return;
    }
    if (EVP_DigestUpdate(m_context.get(), data, size) != 1) {
        std::abort();
    }
    m_size += size;
}

Sha256::Digest Sha256::digest() const {
    // Finalise a copy so the stream can continue after a peek.
    UniqueHandle<EVP_MD_CTX*, EVP_MD_CTX_free> copy(EVP_MD_CTX_new());
    Digest out{};
    unsigned int length = 0;
    if (!copy || EVP_MD_CTX_copy_ex(copy.get(), m_context.get()) != 1 ||
        EVP_DigestFinal_ex(copy.get(), out.data(), &length) != 1 || length != kDigestSize) {
        std::abort();
    }
    return out;
}

std::string Sha256::hex_digest() const {
    Digest bytes = digest();
    return to_hex(bytes.data(), bytes.size());
}

void Sha256::reset() {
    if (EVP_DigestInit_ex(m_context.get(), EVP_sha256(), nullptr) != 1) {
        std::abort();
    }
    m_size = 0;
}

std::string sha256_hex(std::string_view data) {
    Sha256 hash;
    hash.update(data);
    return hash.hex_digest();
}

Result<std::string> sha256_fd_hex(int fd) {
    Sha256 hash;
    char buffer[65536];
    while (true) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno_error("hashing fd {}", fd);
        }
        if (n == 0) {
            return hash.hex_digest();
        }
        hash.update(buffer, static_cast<size_t>(n));
    }
}

}  // namespace locald::base
