// base/temp_dir.h — a private temporary directory removed on destruction.
//
// Contract: created with mkdtemp (mode 0700) under $TMPDIR (absolute) or
// /tmp, named `<prefix>-XXXXXX`. The destructor removes it recursively
// without following symlinks (base::remove_all), so a symlink planted inside
// cannot make cleanup delete anything outside. Move-only.
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace locald::base {

class TempDir {
public:
    static Result<TempDir> create(std::string_view prefix = "locald");
    // Under `parent` instead of $TMPDIR (same filesystem for renames).
    static Result<TempDir> create_in(const std::string& parent, std::string_view prefix);

    TempDir() = default;  // owns nothing
    ~TempDir();
    TempDir(TempDir&& other) noexcept;
    TempDir& operator=(TempDir&& other) noexcept;
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return m_path; }
    // `path()/name`.
    std::string join(std::string_view name) const;
    // Keeps the directory: returns its path and owns nothing afterwards.
    std::string release();
    // Removes it now, reporting errors (the destructor ignores them).
    Result<void> remove();

private:
    explicit TempDir(std::string path) : m_path(std::move(path)) {}
    std::string m_path;
};

}  // namespace locald::base
