#include "layers/internal/fs_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <string_view>

#include "base/sys.h"

namespace locald::layers::internal {

base::Result<std::vector<std::string>> list_dir(int dir_fd) {
    // A fresh open description: fdopendir takes over the fd and reading
    // moves its offset, which must not disturb the caller's fd.
    base::UniqueFd fd = TRY(base::open_at(dir_fd, ".", O_RDONLY | O_DIRECTORY));
    DIR* dir = fdopendir(fd.get());
    if (dir == nullptr) {
        return base::errno_error("listing a directory");
    }
    (void)fd.release();
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* entry = readdir(dir)) {
        std::string_view name = entry->d_name;
        if (name != "." && name != "..") {
            names.emplace_back(name);
        }
        errno = 0;
    }
    int err = errno;
    closedir(dir);
    if (err != 0) {
        return base::Error::from_errno(err, "reading a directory");
    }
    std::sort(names.begin(), names.end());
    return names;
}

void copy_xattrs(int src, int dst) {
    char names[16384];
    ssize_t n = flistxattr(src, names, sizeof(names));
    for (ssize_t i = 0; i < n;) {
        std::string name(names + i);
        i += static_cast<ssize_t>(name.size()) + 1;
        if (name.starts_with("user.overlay.") || name.starts_with("trusted.overlay.")) {
            continue;
        }
        char value[65536];
        ssize_t len = fgetxattr(src, name.c_str(), value, sizeof(value));
        if (len >= 0) {
            (void)fsetxattr(dst, name.c_str(), value, static_cast<size_t>(len), 0);
        }
    }
}

base::Result<uint64_t> copy_file_data(int in, int out, off_t size) {
    uint64_t copied = 0;
    off_t remaining = size;
    while (remaining > 0) {
        ssize_t n = copy_file_range(in, nullptr, out, nullptr, static_cast<size_t>(remaining), 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP) {
                break;  // the kernel cannot here: read/write below
            }
            return base::errno_error("copying file data");
        }
        if (n == 0) {
            break;  // a short file: read/write below sees its EOF
        }
        remaining -= n;
        copied += static_cast<uint64_t>(n);
    }
    if (remaining <= 0) {
        return copied;
    }
    char buffer[1 << 16];
    for (;;) {
        ssize_t n = ::read(in, buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return base::errno_error("reading file data");
        }
        if (n == 0) {
            return copied;
        }
        TRY(base::write_all(out, std::string_view(buffer, static_cast<size_t>(n))));
        copied += static_cast<uint64_t>(n);
    }
}

}  // namespace locald::layers::internal
