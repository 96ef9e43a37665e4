#include "config/internal/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "base/unique_fd.h"

namespace locald::config::internal {

base::Result<std::string> read_text_file(const std::string& path, size_t max_bytes) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
    // writer before the regular-file check below could refuse it.
    int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (raw < 0) {
        return base::errno_error("opening `{}`", path);
    }
    base::UniqueFd fd(raw);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        return base::errno_error("reading `{}`", path);
    }
    if (!S_ISREG(st.st_mode)) {
        return base::invalid_argument("reading `{}`: not a regular file", path);
    }
    std::string data;
    char buffer[16384];
    for (;;) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return base::errno_error("reading `{}`", path);
        }
        if (n == 0) {
            break;
        }
        if (data.size() + static_cast<size_t>(n) > max_bytes) {
            return base::invalid_argument("reading `{}`: larger than {} bytes", path, max_bytes);
        }
        data.append(buffer, static_cast<size_t>(n));
    }
    return data;
}

bool exists(const std::string& path) {
    // lstat: a dangling `.env` symlink is "present" and fails loudly when
    // read, instead of being skipped as if there were no file.
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

std::string resolve_path(const std::string& base, std::string_view relative) {
    // lexically_normal only allocates; it does not touch the filesystem.
    std::filesystem::path path(relative);
    if (path.is_relative()) {
        path = std::filesystem::path(base) / path;
    }
    std::string out = path.lexically_normal().string();
    while (out.size() > 1 && out.back() == '/') {
        out.pop_back();
    }
    return out;
}

std::string base_name(const std::string& path) {
    size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace locald::config::internal
