#include "layers/internal/fs_util.h"

#include <dirent.h>
#include <fcntl.h>

#include <algorithm>

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

}  // namespace locald::layers::internal
