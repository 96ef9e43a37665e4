// base/scope_guard.h — run a callable when the scope ends, unless dismissed.
//
//   ScopeGuard cleanup([&] { unlink(tmp.c_str()); });
//   …
//   cleanup.dismiss();  // success: keep the file
#pragma once

#include <utility>

namespace locald::base {

template <typename F>
class [[nodiscard]] ScopeGuard {
public:
    explicit ScopeGuard(F function) : m_function(std::move(function)) {}
    ~ScopeGuard() {
        if (m_active) {
            m_function();
        }
    }

    ScopeGuard(const ScopeGuard&) = delete;
    ScopeGuard& operator=(const ScopeGuard&) = delete;
    ScopeGuard(ScopeGuard&& other) noexcept
        : m_function(std::move(other.m_function)), m_active(std::exchange(other.m_active, false)) {}
    ScopeGuard& operator=(ScopeGuard&&) = delete;

    void dismiss() { m_active = false; }

private:
    F m_function;
    bool m_active = true;
};

}  // namespace locald::base
