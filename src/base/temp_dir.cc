#include "base/temp_dir.h"

#include <stdlib.h>

#include <cstdlib>

#include "base/sys.h"

namespace locald::base {

Result<TempDir> TempDir::create(std::string_view prefix) {
    const char* tmpdir = std::getenv("TMPDIR");
    std::string parent = tmpdir != nullptr && tmpdir[0] == '/' ? tmpdir : "/tmp";
    return create_in(parent, prefix);
}

Result<TempDir> TempDir::create_in(const std::string& parent, std::string_view prefix) {
    if (prefix.find('/') != std::string_view::npos) {
        return invalid_argument("temporary directory prefix `{}` contains '/'", prefix);
    }
    std::string path = parent;
    if (path.empty() || path.back() != '/') {
        path += '/';
    }
    path += prefix;
    path += "-XXXXXX";
    // mkdtemp creates the directory 0700 with a name nobody could predict.
    if (::mkdtemp(path.data()) == nullptr) {
        return errno_error("creating a temporary directory in `{}`", parent);
    }
    return TempDir(std::move(path));
}

TempDir::~TempDir() {
    if (!m_path.empty()) {
        // Nothing to report to from a destructor; remove() reports.
        (void)remove_all(m_path);
    }
}

TempDir::TempDir(TempDir&& other) noexcept : m_path(std::exchange(other.m_path, {})) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
    if (this != &other) {
        if (!m_path.empty()) {
            (void)remove_all(m_path);
        }
        m_path = std::exchange(other.m_path, {});
    }
    return *this;
}

std::string TempDir::join(std::string_view name) const {
    return m_path + "/" + std::string(name);
}

std::string TempDir::release() {
    return std::exchange(m_path, {});
}

Result<void> TempDir::remove() {
    if (m_path.empty()) {
        return ok();
    }
    std::string path = std::exchange(m_path, {});
    return remove_all(path);
}

}  // namespace locald::base
