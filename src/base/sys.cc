#include "base/sys.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

namespace locald::base {

Result<std::vector<std::string>> list_dir_names(int dirfd, const std::string& display) {
    int listing_fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (listing_fd < 0) {
        return errno_error("listing `{}`", display);
    }
    DIR* dir = ::fdopendir(listing_fd);
    if (dir == nullptr) {
        Error error = errno_error("listing `{}`", display);
        ::close(listing_fd);
        return error;
    }
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* entry = ::readdir(dir)) {
        std::string_view name = entry->d_name;
        if (name != "." && name != "..") {
            names.emplace_back(name);
        }
        errno = 0;
    }
    int read_errno = errno;
    ::closedir(dir);
    if (read_errno != 0) {
        return Error::from_errno(read_errno, fmt::format("listing `{}`", display));
    }
    return names;
}

namespace {

// A directory's parent path for mkdir_p ("" when there is none).
std::string parent_of(const std::string& path) {
    size_t end = path.size();
    while (end > 1 && path[end - 1] == '/') {
        --end;
    }
    size_t slash = path.rfind('/', end - 1);
    if (slash == std::string::npos) {
        return "";
    }
    while (slash > 0 && path[slash - 1] == '/') {
        --slash;
    }
    return slash == 0 ? "/" : path.substr(0, slash);
}

Result<void> remove_dir_contents(int dirfd, const std::string& display);

// Removes `name` inside `parent_fd`; `display` is the path for messages.
Result<void> remove_entry(int parent_fd, const std::string& name, const std::string& display) {
    struct stat st;
    if (::fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) {
            return ok();
        }
        return errno_error("inspecting `{}`", display);
    }
    if (!S_ISDIR(st.st_mode)) {
        if (::unlinkat(parent_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
            return errno_error("removing `{}`", display);
        }
        return ok();
    }
    // We need read+search (to list) and write (to unlink entries) on the
    // directory itself; images ship 0000 or 0555 directories.
    if ((st.st_mode & 0700) != 0700 && st.st_uid == ::geteuid()) {
        if (::fchmodat(parent_fd, name.c_str(), (st.st_mode & 07777) | 0700, 0) != 0) {
            return errno_error("making `{}` writable to remove it", display);
        }
    }
    int fd = ::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return errno_error("opening `{}` to remove it", display);
    }
    UniqueFd dir(fd);
    TRY(remove_dir_contents(dir.get(), display));
    if (::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
        return errno_error("removing directory `{}`", display);
    }
    return ok();
}

Result<void> remove_dir_contents(int dirfd, const std::string& display) {
    // Collect names first: unlinking while iterating a DIR stream may skip
    // entries on some filesystems.
    std::vector<std::string> names = TRY(list_dir_names(dirfd, display));
    for (const std::string& name : names) {
        TRY(remove_entry(dirfd, name, display + "/" + name));
    }
    return ok();
}

}  // namespace

Result<UniqueFd> open_file(const std::string& path, int flags, mode_t mode) {
    int fd;
    do {
        fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        return errno_error("opening `{}`", path);
    }
    return UniqueFd(fd);
}

Result<UniqueFd> open_at(int dirfd, const std::string& path, int flags, mode_t mode) {
    int fd;
    do {
        fd = ::openat(dirfd, path.c_str(), flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        return errno_error("opening `{}`", path);
    }
    return UniqueFd(fd);
}

// Reads to EOF; `what` names the source in messages.
static Result<std::string> read_to_end(int fd, size_t max_bytes, const std::string& what) {
    std::string data;
    char buffer[65536];
    while (true) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno_error("reading {}", what);
        }
        if (n == 0) {
            return data;
        }
        if (data.size() + static_cast<size_t>(n) > max_bytes) {
            return invalid_argument("reading {}: exceeds the {}-byte limit", what, max_bytes);
        }
        data.append(buffer, static_cast<size_t>(n));
    }
}

Result<std::string> read_all(int fd, size_t max_bytes) {
    return read_to_end(fd, max_bytes, fmt::format("fd {}", fd));
}

Result<std::string> read_file(const std::string& path, size_t max_bytes) {
    return read_file_at(AT_FDCWD, path, max_bytes);
}

Result<std::string> read_file_at(int dirfd, const std::string& path, size_t max_bytes) {
    UniqueFd fd = TRY(open_at(dirfd, path, O_RDONLY));
    return read_to_end(fd.get(), max_bytes, fmt::format("`{}`", path));
}

Result<void> write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno_error("writing fd {}", fd);
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return ok();
}

Result<void> write_file(const std::string& path, std::string_view data, mode_t mode) {
    UniqueFd fd = TRY(open_file(path, O_WRONLY | O_CREAT | O_TRUNC, mode));
    return write_all(fd.get(), data).context(fmt::format("writing `{}`", path));
}

Result<Pipe> make_pipe(int flags) {
    int fds[2];
    if (::pipe2(fds, flags | O_CLOEXEC) != 0) {
        return errno_error("creating a pipe");
    }
    return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

Result<void> mkdir_p(const std::string& path, mode_t mode) {
    if (path.empty()) {
        return invalid_argument("creating directory: empty path");
    }
    if (::mkdir(path.c_str(), mode) == 0) {
        return ok();
    }
    int err = errno;
    if (err == EEXIST) {
        struct stat st;
        if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
            return ok();
        }
        return Error::from_errno(EEXIST, fmt::format("creating directory `{}`: a non-directory "
                                                     "is in the way",
                                                     path));
    }
    if (err != ENOENT) {
        return Error::from_errno(err, fmt::format("creating directory `{}`", path));
    }
    std::string parent = parent_of(path);
    if (parent.empty() || parent == path) {
        return Error::from_errno(err, fmt::format("creating directory `{}`", path));
    }
    TRY(mkdir_p(parent, mode));
    if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
        return errno_error("creating directory `{}`", path);
    }
    return ok();
}

Result<void> remove_all(const std::string& path) {
    if (path.empty()) {
        return invalid_argument("removing: empty path");
    }
    return remove_all_at(AT_FDCWD, path);
}

Result<void> remove_all_at(int dirfd, const std::string& name) {
    return remove_entry(dirfd, name, name);
}

Result<struct stat> fstat_fd(int fd) {
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        return errno_error("inspecting fd {}", fd);
    }
    return st;
}

Result<struct stat> stat_path(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
        return errno_error("inspecting `{}`", path);
    }
    return st;
}

Result<struct stat> lstat_path(const std::string& path) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
        return errno_error("inspecting `{}`", path);
    }
    return st;
}

Result<struct stat> stat_at(int dirfd, const std::string& path, int flags) {
    struct stat st;
    if (::fstatat(dirfd, path.c_str(), &st, flags) != 0) {
        return errno_error("inspecting `{}`", path);
    }
    return st;
}

Result<bool> path_exists(const std::string& path) {
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) {
        return true;
    }
    if (errno == ENOENT || errno == ENOTDIR) {
        return false;
    }
    return errno_error("inspecting `{}`", path);
}

Result<std::string> read_link(const std::string& path) {
    return read_link_at(AT_FDCWD, path);
}

Result<std::string> read_link_at(int dirfd, const std::string& path) {
    std::string target(256, '\0');
    while (true) {
        ssize_t n = ::readlinkat(dirfd, path.c_str(), target.data(), target.size());
        if (n < 0) {
            return errno_error("reading symlink `{}`", path);
        }
        if (static_cast<size_t>(n) < target.size()) {
            target.resize(static_cast<size_t>(n));
            return target;
        }
        if (target.size() > PATH_MAX * 4) {
            return invalid_argument("reading symlink `{}`: target too long", path);
        }
        target.resize(target.size() * 2);
    }
}

Result<void> set_cloexec(int fd, bool on) {
    int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0) {
        return errno_error("reading flags of fd {}", fd);
    }
    flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
    if (::fcntl(fd, F_SETFD, flags) != 0) {
        return errno_error("setting close-on-exec on fd {}", fd);
    }
    return ok();
}

Result<void> set_nonblocking(int fd, bool on) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0) {
        return errno_error("reading status flags of fd {}", fd);
    }
    flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    if (::fcntl(fd, F_SETFL, flags) != 0) {
        return errno_error("setting O_NONBLOCK on fd {}", fd);
    }
    return ok();
}

Result<UniqueFd> dup_fd(int fd) {
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) {
        return errno_error("duplicating fd {}", fd);
    }
    return UniqueFd(copy);
}

Result<void> fsync_fd(int fd) {
    if (::fsync(fd) != 0) {
        return errno_error("syncing fd {}", fd);
    }
    return ok();
}

Result<void> fsync_dir(const std::string& path) {
    UniqueFd fd = TRY(open_file(path, O_RDONLY | O_DIRECTORY));
    if (::fsync(fd.get()) != 0) {
        return errno_error("syncing directory `{}`", path);
    }
    return ok();
}

Result<void> rename_path(const std::string& from, const std::string& to) {
    if (::rename(from.c_str(), to.c_str()) != 0) {
        return errno_error("renaming `{}` to `{}`", from, to);
    }
    return ok();
}

Result<void> rename_at(int from_dirfd, const std::string& from, int to_dirfd, const std::string& to,
                       unsigned int flags) {
    if (::renameat2(from_dirfd, from.c_str(), to_dirfd, to.c_str(), flags) != 0) {
        return errno_error("renaming `{}` to `{}`", from, to);
    }
    return ok();
}

Result<void> unlink_path(const std::string& path) {
    if (::unlink(path.c_str()) != 0) {
        return errno_error("removing `{}`", path);
    }
    return ok();
}

}  // namespace locald::base
