// base/atomic_file.h — replace a file so readers see the old or the new
// content, never a mix, even across a crash.
//
// Contract: a temporary file is created in the same directory as the target
// (O_CREAT|O_EXCL|O_CLOEXEC, name `.<leaf>.tmp-<random>`), written, fsync'ed,
// chmod'ed to `mode` exactly (umask does not apply: 0600 for secrets stays
// 0600), renamed over the target, and the directory is fsync'ed. On any
// failure the temporary file is removed and the target is untouched.
// The target's directory must exist.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "base/error.h"
#include "base/unique_fd.h"

namespace locald::base {

Result<void> atomic_write_file(const std::string& path, std::string_view data, mode_t mode = 0644);

// Same, for the entry `name` of the directory `dirfd` (name has no '/').
Result<void> atomic_write_file_at(int dirfd, const std::string& name, std::string_view data,
                                  mode_t mode = 0644);

// Streaming variant for data that does not fit in memory (blob ingest):
//   auto file = TRY(AtomicFile::create(path, 0644));
//   TRY(file.write(chunk)); …; TRY(file.commit());
// Dropping an uncommitted AtomicFile removes its temporary file.
class AtomicFile {
public:
    static Result<AtomicFile> create(const std::string& path, mode_t mode = 0644);

    AtomicFile(AtomicFile&& other) noexcept;
    AtomicFile& operator=(AtomicFile&& other) noexcept;
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    ~AtomicFile();

    // The temporary file's fd (writable), e.g. for sendfile or fchown.
    int fd() const { return m_fd.get(); }
    // Where the data goes until commit().
    const std::string& temp_path() const { return m_temp_path; }

    Result<void> write(std::string_view data);
    // fsync, chmod, rename over the target, fsync the directory.
    Result<void> commit();
    // Removes the temporary file now (also done by the destructor).
    void abort();

private:
    friend Result<void> atomic_write_file_at(int, const std::string&, std::string_view, mode_t);
    AtomicFile(UniqueFd dir, UniqueFd fd, std::string path, std::string temp_name,
               std::string temp_path, std::string leaf, mode_t mode);

    UniqueFd m_dir;
    UniqueFd m_fd;
    std::string m_path;
    std::string m_temp_name;
    std::string m_temp_path;
    std::string m_leaf;
    mode_t m_mode = 0644;
    bool m_done = false;
};

}  // namespace locald::base
