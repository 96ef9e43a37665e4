#include "cnb/internal/tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/confined.h"
#include "base/sys.h"

namespace locald::cnb::internal {

std::string join(std::string_view a, std::string_view b) {
    if (a.empty()) {
        return std::string(b);
    }
    if (b.empty()) {
        return std::string(a);
    }
    std::string out(a);
    if (out.back() != '/') {
        out += '/';
    }
    out.append(b.front() == '/' ? b.substr(1) : b);
    return out;
}

std::string Tree::display(std::string_view path) const {
    return join(name, path);
}

base::Result<EntryType> entry_type(const Tree& tree, std::string_view path) {
    auto fd = base::open_in_root(tree.fd, path, O_PATH);
    if (!fd) {
        int err = fd.error().errno_value();
        if (err == ENOENT) {
            return EntryType::Missing;
        }
        return std::move(fd.error()).context(fmt::format("opening `{}`", tree.display(path)));
    }
    struct stat st;
    if (::fstat(fd->get(), &st) != 0) {
        return base::errno_error("fstat `{}`", tree.display(path));
    }
    if (S_ISDIR(st.st_mode)) {
        return EntryType::Directory;
    }
    if (S_ISREG(st.st_mode)) {
        return EntryType::File;
    }
    return EntryType::Other;
}

base::Result<std::optional<std::vector<DirEntry>>> list_dir(const Tree& tree,
                                                            std::string_view path) {
    auto fd = base::open_in_root(tree.fd, path, O_RDONLY | O_DIRECTORY);
    if (!fd) {
        if (fd.error().errno_value() == ENOENT) {
            return std::optional<std::vector<DirEntry>>();
        }
        return std::move(fd.error())
            .context(fmt::format("opening the directory `{}`", tree.display(path)));
    }
    std::vector<std::string> names = TRY(base::list_dir_names(fd->get(), tree.display(path)));
    std::sort(names.begin(), names.end());
    std::vector<DirEntry> entries;
    entries.reserve(names.size());
    for (auto& name : names) {
        // Resolve each entry inside the root: a symlink to a file counts as a
        // file, a dangling one as missing (never followed out of the root).
        EntryType type = TRY(entry_type(tree, join(path, name)));
        entries.push_back({std::move(name), type});
    }
    return std::optional<std::vector<DirEntry>>(std::move(entries));
}

namespace {

base::Result<std::optional<std::string>> read_impl(const Tree& tree, std::string_view path,
                                                   size_t max_bytes, bool optional) {
    auto fd = base::open_in_root(tree.fd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
    if (!fd) {
        if (optional && fd.error().errno_value() == ENOENT) {
            return std::optional<std::string>();
        }
        return std::move(fd.error()).context(fmt::format("opening `{}`", tree.display(path)));
    }
    struct stat st;
    if (::fstat(fd->get(), &st) != 0) {
        return base::errno_error("fstat `{}`", tree.display(path));
    }
    if (!S_ISREG(st.st_mode)) {
        return base::invalid_argument("`{}`: expected a regular file", tree.display(path));
    }
    if (static_cast<uint64_t>(st.st_size) > max_bytes) {
        return base::invalid_argument("`{}`: larger than the {} bytes allowed", tree.display(path),
                                      max_bytes);
    }
    std::string out;
    char buffer[16384];
    while (true) {
        ssize_t n = ::read(fd->get(), buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return base::errno_error("reading `{}`", tree.display(path));
        }
        if (n == 0) {
            break;
        }
        out.append(buffer, static_cast<size_t>(n));
        if (out.size() > max_bytes) {
            return base::invalid_argument("`{}`: larger than the {} bytes allowed",
                                          tree.display(path), max_bytes);
        }
    }
    return std::optional<std::string>(std::move(out));
}

}  // namespace

base::Result<std::string> read_file(const Tree& tree, std::string_view path, size_t max_bytes) {
    auto content = TRY(read_impl(tree, path, max_bytes, false));
    return std::move(*content);
}

base::Result<std::optional<std::string>> read_optional_file(const Tree& tree, std::string_view path,
                                                            size_t max_bytes) {
    return read_impl(tree, path, max_bytes, true);
}

}  // namespace locald::cnb::internal
