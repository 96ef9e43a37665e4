// base/unique_handle.h — sole ownership of a C library handle.
//
// `UniqueHandle<T, Deleter>` owns a handle and calls `Deleter(handle)` on
// destruction unless it is null. T may be the handle type itself
// (`UniqueHandle<CURL*, curl_easy_cleanup>`, `UniqueHandle<cap_t, cap_free>`,
// `UniqueHandle<scmp_filter_ctx, seccomp_release>`) or the pointee type
// (`UniqueHandle<EVP_MD_CTX, EVP_MD_CTX_free>`, `UniqueHandle<archive,
// archive_read_free>`); both store a pointer. The deleter's return value is
// ignored (cleanup errors are not actionable). Move-only.
#pragma once

#include <type_traits>
#include <utility>

namespace locald::base {

template <typename T, auto Deleter>
class UniqueHandle {
public:
    using pointer = std::conditional_t<std::is_pointer_v<T>, T, T*>;

    UniqueHandle() = default;
    explicit UniqueHandle(pointer handle) : m_handle(handle) {}
    ~UniqueHandle() { reset(); }

    UniqueHandle(const UniqueHandle&) = delete;
    UniqueHandle& operator=(const UniqueHandle&) = delete;
    UniqueHandle(UniqueHandle&& other) noexcept : m_handle(other.release()) {}
    UniqueHandle& operator=(UniqueHandle&& other) noexcept {
        if (this != &other) {
            reset(other.release());
        }
        return *this;
    }

    pointer get() const { return m_handle; }
    explicit operator bool() const { return m_handle != nullptr; }

    // Gives up ownership without freeing.
    [[nodiscard]] pointer release() { return std::exchange(m_handle, nullptr); }

    void reset(pointer handle = nullptr) {
        pointer old = std::exchange(m_handle, handle);
        if (old != nullptr) {
            Deleter(old);
        }
    }

private:
    pointer m_handle = nullptr;
};

}  // namespace locald::base
