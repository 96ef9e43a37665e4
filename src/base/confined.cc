#include "base/confined.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include "base/sys.h"

namespace locald::base {

namespace {

// Linux's MAXSYMLINKS: the same limit openat2 applies.
constexpr int kMaxSymlinkHops = 40;

std::atomic<ResolveMode> g_mode{ResolveMode::Auto};
// 0: not probed yet, 1: openat2 works, -1: the kernel (or seccomp) said ENOSYS.
std::atomic<int> g_openat2_state{0};

Error path_error(int err, std::string_view path, std::string_view what) {
    return Error::from_errno(err, fmt::format("{} `{}` inside the root", what, path));
}

Result<void> check_path(std::string_view path) {
    if (path.find('\0') != std::string_view::npos) {
        return invalid_argument("path `{}` contains a NUL byte", path.substr(0, path.find('\0')));
    }
    if (path.empty()) {
        return Error::from_errno(ENOENT, "resolving an empty path inside the root");
    }
    return ok();
}

// Components of `path` (empty ones dropped); a trailing slash becomes a
// final "." so the last real component must be a directory, as in the kernel.
void push_components(std::string_view path, std::vector<std::string>& reversed_out) {
    std::vector<std::string> components;
    size_t start = 0;
    while (start <= path.size()) {
        size_t slash = path.find('/', start);
        if (slash == std::string_view::npos) {
            slash = path.size();
        }
        if (slash > start) {
            components.emplace_back(path.substr(start, slash - start));
        }
        start = slash + 1;
    }
    if (!path.empty() && path.back() == '/' && !components.empty()) {
        components.emplace_back(".");
    }
    // The walk pops from the back, so store the components reversed.
    for (auto it = components.rbegin(); it != components.rend(); ++it) {
        reversed_out.push_back(std::move(*it));
    }
}

Result<UniqueFd> openat2_in_root(int root_fd, std::string_view path, int flags, mode_t mode) {
    struct open_how how = {};
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
    // openat2 rejects a non-zero mode without O_CREAT/O_TMPFILE.
    if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
        how.mode = mode;
    }
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    std::string text(path);
    for (int attempt = 0;; ++attempt) {
        long fd = ::syscall(SYS_openat2, root_fd, text.c_str(), &how, sizeof how);
        if (fd >= 0) {
            return UniqueFd(static_cast<int>(fd));
        }
        int err = errno;
        // EAGAIN: a concurrent rename/mount raced the resolution; the kernel
        // asks us to retry. Bounded so a hostile racer cannot spin us forever.
        if ((err == EAGAIN || err == EINTR) && attempt < 128) {
            continue;
        }
        return path_error(err, path, "opening");
    }
}

class Walker {
public:
    explicit Walker(int root_fd) : m_root_fd(root_fd) {}

    Result<UniqueFd> open(std::string_view path, int flags, mode_t mode) {
        std::vector<std::string> remaining;
        push_components(path, remaining);
        int hops = 0;
        while (!remaining.empty()) {
            std::string component = std::move(remaining.back());
            remaining.pop_back();
            bool last = remaining.empty();
            if (component == "." || component == "..") {
                // `..` at the root stays at the root: the stack never goes
                // above it, which is the whole point.
                if (component == ".." && !m_stack.empty()) {
                    m_stack.pop_back();
                }
                if (last) {
                    return open_current(path, flags, mode);
                }
                continue;
            }
            bool follow = !last || ((flags & O_NOFOLLOW) == 0 &&
                                    (flags & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL));
            if (follow) {
                int fd = ::openat(current(), component.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0) {
                    int err = errno;
                    // A missing leaf is for the real open below (O_CREAT).
                    if (!(last && err == ENOENT)) {
                        return path_error(err, path, "resolving");
                    }
                } else {
                    UniqueFd entry(fd);
                    struct stat st;
                    if (::fstat(entry.get(), &st) != 0) {
                        return path_error(errno, path, "resolving");
                    }
                    if (S_ISLNK(st.st_mode)) {
                        if (++hops > kMaxSymlinkHops) {
                            return path_error(ELOOP, path, "resolving");
                        }
                        auto target = read_link_at(entry.get(), "");
                        if (!target) {
                            return path_error(target.error().errno_value(), path, "resolving");
                        }
                        if (target->empty()) {
                            return path_error(ENOENT, path, "resolving");
                        }
                        // An absolute target restarts at the root, never at
                        // the host's `/`.
                        if (target->front() == '/') {
                            m_stack.clear();
                        }
                        push_components(*target, remaining);
                        if (remaining.empty()) {
                            // A target of just "/" is the root itself.
                            return open_current(path, flags, mode);
                        }
                        continue;
                    }
                    if (!last) {
                        if (!S_ISDIR(st.st_mode)) {
                            return path_error(ENOTDIR, path, "resolving");
                        }
                        m_stack.push_back(std::move(entry));
                        continue;
                    }
                }
            }
            // The leaf itself. O_NOFOLLOW always: if a symlink was swapped in
            // after the check above, this fails with ELOOP instead of
            // following it out of the root.
            int fd = ::openat(current(), component.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
            if (fd < 0) {
                return path_error(errno, path, "opening");
            }
            return UniqueFd(fd);
        }
        return open_current(path, flags, mode);
    }

private:
    int current() const { return m_stack.empty() ? m_root_fd : m_stack.back().get(); }

    Result<UniqueFd> open_current(std::string_view path, int flags, mode_t mode) {
        int fd = ::openat(current(), ".", (flags & ~O_NOFOLLOW) | O_CLOEXEC, mode);
        if (fd < 0) {
            return path_error(errno, path, "opening");
        }
        return UniqueFd(fd);
    }

    int m_root_fd;
    std::vector<UniqueFd> m_stack;  // directories below the root, deepest last
};

bool openat2_available() {
    int state = g_openat2_state.load();
    if (state == 0) {
        struct open_how how = {};
        how.flags = O_PATH | O_CLOEXEC;
        how.resolve = RESOLVE_IN_ROOT;
        long fd = ::syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof how);
        if (fd >= 0) {
            ::close(static_cast<int>(fd));
            state = 1;
        } else {
            state = errno == ENOSYS ? -1 : 1;
        }
        g_openat2_state.store(state);
    }
    return state == 1;
}

}  // namespace

void set_resolve_mode_for_testing(ResolveMode mode) {
    g_mode.store(mode);
}

ResolveMode effective_resolve_mode() {
    ResolveMode mode = g_mode.load();
    if (mode != ResolveMode::Auto) {
        return mode;
    }
    return openat2_available() ? ResolveMode::Openat2 : ResolveMode::Walk;
}

Result<UniqueFd> open_in_root(int root_fd, std::string_view path, int flags, mode_t mode) {
    TRY(check_path(path));
    ResolveMode mode_now = g_mode.load();
    if (mode_now == ResolveMode::Walk ||
        (mode_now == ResolveMode::Auto && g_openat2_state.load() < 0)) {
        return Walker(root_fd).open(path, flags, mode);
    }
    auto opened = openat2_in_root(root_fd, path, flags, mode);
    if (!opened && opened.error().errno_value() == ENOSYS) {
        if (mode_now == ResolveMode::Openat2) {
            return unsupported("opening `{}` inside the root: the kernel has no openat2", path);
        }
        g_openat2_state.store(-1);
        return Walker(root_fd).open(path, flags, mode);
    }
    return opened;
}

Result<ParentAndLeaf> open_parent_in_root(int root_fd, std::string_view path, int dir_flags) {
    TRY(check_path(path));
    std::string_view trimmed = path;
    while (!trimmed.empty() && trimmed.back() == '/') {
        trimmed.remove_suffix(1);
    }
    if (trimmed.empty()) {
        return invalid_argument("`{}` names the root itself, not an entry in it", path);
    }
    size_t slash = trimmed.rfind('/');
    std::string_view parent = slash == std::string_view::npos ? "." : trimmed.substr(0, slash + 1);
    std::string_view leaf = slash == std::string_view::npos ? trimmed : trimmed.substr(slash + 1);
    if (leaf == "." || leaf == "..") {
        return invalid_argument("`{}` ends in `{}`, not in an entry name", path, leaf);
    }
    UniqueFd dir = TRY(open_in_root(root_fd, parent, dir_flags | O_DIRECTORY));
    return ParentAndLeaf{std::move(dir), std::string(leaf)};
}

Result<UniqueFd> mkdir_all_in_root(int root_fd, std::string_view path, mode_t mode) {
    TRY(check_path(path));
    // The common case in an unpacker: the directory is already there.
    auto existing = open_in_root(root_fd, path, O_PATH | O_DIRECTORY);
    if (existing || existing.error().errno_value() != ENOENT) {
        return existing;
    }
    // Create one component at a time, each resolved from the root again, so
    // symlinks met on the way are confined exactly like in open_in_root.
    std::string prefix;
    size_t start = 0;
    while (start <= path.size()) {
        size_t slash = path.find('/', start);
        if (slash == std::string_view::npos) {
            slash = path.size();
        }
        std::string_view component = path.substr(start, slash - start);
        start = slash + 1;
        if (component.empty() || component == ".") {
            continue;
        }
        prefix += "/";
        prefix += component;
        if (component == "..") {
            continue;
        }
        ParentAndLeaf parent = TRY(open_parent_in_root(root_fd, prefix));
        if (::mkdirat(parent.dir.get(), parent.leaf.c_str(), mode) != 0 && errno != EEXIST) {
            return path_error(errno, prefix, "creating directory");
        }
    }
    return open_in_root(root_fd, prefix.empty() ? "." : prefix, O_PATH | O_DIRECTORY);
}

}  // namespace locald::base
