// base/sys.h — thin syscall wrappers returning Result.
//
// Contract: each wrapper makes one (or a few) syscalls, captures errno right
// after the failing call and names the path or fd in the message. Every fd
// returned is O_CLOEXEC. EINTR is retried where the call is restartable.
// Paths are taken as `const std::string&` so `std::filesystem::path`,
// `std::string` and literals all convert; nothing here resolves paths under
// an untrusted root — use base/confined.h for that.
// Depends only on base/error.h and base/unique_fd.h.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"

namespace locald::base {

// open(2) with O_CLOEXEC added. `mode` only matters with O_CREAT/O_TMPFILE.
Result<UniqueFd> open_file(const std::string& path, int flags, mode_t mode = 0);

// openat(2) with O_CLOEXEC added; `dirfd` may be AT_FDCWD.
Result<UniqueFd> open_at(int dirfd, const std::string& path, int flags, mode_t mode = 0);

// The names in the directory `dirfd` ("." and ".." left out, in readdir
// order); `dirfd` stays open and its position is untouched. `display` names
// it in errors.
Result<std::vector<std::string>> list_dir_names(int dirfd, const std::string& display);

// Reads all of `fd` from its current offset to EOF. More than `max_bytes` is
// an InvalidArgument error ("exceeds the N-byte limit"), never a silent cut.
// `fd` should be blocking: EAGAIN on a non-blocking fd is reported as an
// error (Unavailable) and what was read so far is dropped.
Result<std::string> read_all(int fd, size_t max_bytes);

// Reads the whole file at `path` (following symlinks), capped like read_all.
Result<std::string> read_file(const std::string& path, size_t max_bytes);

// Like read_file, relative to `dirfd`.
Result<std::string> read_file_at(int dirfd, const std::string& path, size_t max_bytes);

// Writes every byte of `data`, retrying short writes and EINTR.
// A peer that closed the pipe gives EPIPE (Unavailable), not SIGPIPE, only if
// the caller ignores SIGPIPE; locald's main does.
Result<void> write_all(int fd, std::string_view data);

// Writes `data` to `path` in place (O_CREAT|O_TRUNC, `mode` for new files).
// Not atomic: use base/atomic_file.h for anything a reader may see half done.
Result<void> write_file(const std::string& path, std::string_view data, mode_t mode = 0644);

struct Pipe {
    UniqueFd read;
    UniqueFd write;
};

// pipe2(2) with O_CLOEXEC always; `flags` may add O_NONBLOCK / O_DIRECT.
Result<Pipe> make_pipe(int flags = 0);

// mkdir -p: creates missing directories with `mode` (minus umask). An
// existing directory (or a symlink to one) is fine; an existing
// non-directory is an AlreadyExists error.
Result<void> mkdir_p(const std::string& path, mode_t mode);

// rm -rf without ever following a symlink: a symlink is unlinked, not
// descended. A missing `path` is success. Directories without search or
// write permission for us are chmod'ed u+rwx first (images ship 0000 dirs).
Result<void> remove_all(const std::string& path);

// Like remove_all for the entry `name` of the directory `dirfd`.
Result<void> remove_all_at(int dirfd, const std::string& name);

Result<struct stat> fstat_fd(int fd);
Result<struct stat> stat_path(const std::string& path);   // follows symlinks
Result<struct stat> lstat_path(const std::string& path);  // does not
// fstatat(2); pass AT_SYMLINK_NOFOLLOW / AT_EMPTY_PATH in `flags` as needed.
Result<struct stat> stat_at(int dirfd, const std::string& path, int flags);

// True if `path` exists (lstat: a dangling symlink exists). Errors other
// than ENOENT/ENOTDIR are returned.
Result<bool> path_exists(const std::string& path);

// readlink(2)/readlinkat(2) returning the whole target.
Result<std::string> read_link(const std::string& path);
Result<std::string> read_link_at(int dirfd, const std::string& path);

Result<void> set_cloexec(int fd, bool on = true);
Result<void> set_nonblocking(int fd, bool on = true);

// fcntl(F_DUPFD_CLOEXEC).
Result<UniqueFd> dup_fd(int fd);

Result<void> fsync_fd(int fd);
// Opens `path` (a directory) and fsyncs it: makes a rename/create inside durable.
Result<void> fsync_dir(const std::string& path);

// rename(2)/renameat2(2) (flags e.g. RENAME_NOREPLACE), unlink(2), rmdir(2).
Result<void> rename_path(const std::string& from, const std::string& to);
Result<void> rename_at(int from_dirfd, const std::string& from, int to_dirfd, const std::string& to,
                       unsigned int flags = 0);
Result<void> unlink_path(const std::string& path);

}  // namespace locald::base
