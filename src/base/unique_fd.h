// base/unique_fd.h — sole ownership of a file descriptor.
//
// Move-only; closes on destruction. Every fd locald opens is O_CLOEXEC, so a
// UniqueFd never leaks into a child unless it is dup2'd there on purpose.
#pragma once

#include <unistd.h>

#include <utility>

namespace locald::base {

class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : m_fd(fd) {}
    ~UniqueFd() { reset(); }

    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& other) noexcept : m_fd(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) {
            reset(other.release());
        }
        return *this;
    }

    int get() const { return m_fd; }
    bool valid() const { return m_fd >= 0; }
    explicit operator bool() const { return valid(); }

    // Gives up ownership without closing.
    [[nodiscard]] int release() { return std::exchange(m_fd, -1); }

    void reset(int fd = -1) {
        int old = std::exchange(m_fd, fd);
        if (old >= 0) {
            // close() errors are not actionable here: the fd is gone either way.
            ::close(old);
        }
    }

private:
    int m_fd = -1;
};

}  // namespace locald::base
