#include "base/atomic_file.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/hex.h"
#include "base/sys.h"

namespace locald::base {

namespace {

struct SplitPath {
    std::string dir;
    std::string leaf;
};

Result<SplitPath> split_path(const std::string& path) {
    size_t slash = path.rfind('/');
    SplitPath split;
    if (slash == std::string::npos) {
        split = {".", path};
    } else {
        split = {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
    }
    if (split.leaf.empty() || split.leaf == "." || split.leaf == "..") {
        return invalid_argument("writing `{}`: not a file name", path);
    }
    return split;
}

std::string temp_name_for(const std::string& leaf) {
    unsigned char random[8];
    // getrandom on 8 bytes does not block once the pool is initialised and
    // is never short for <= 256 bytes; a failure still leaves O_EXCL to
    // catch a collision.
    if (::getrandom(random, sizeof random, 0) != sizeof random) {
        for (size_t i = 0; i < sizeof random; ++i) {
            random[i] = static_cast<unsigned char>(::getpid() >> (i % 4));
        }
    }
    // Keep the name under NAME_MAX even for long leaves.
    std::string shortened = leaf.substr(0, 200);
    return "." + shortened + ".tmp-" + to_hex(random, sizeof random);
}

Result<UniqueFd> create_temp(int dirfd, const std::string& leaf, std::string& temp_name) {
    for (int attempt = 0; attempt < 16; ++attempt) {
        temp_name = temp_name_for(leaf);
        int fd = ::openat(dirfd, temp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            return UniqueFd(fd);
        }
        if (errno != EEXIST) {
            return errno_error("creating a temporary file for `{}`", leaf);
        }
    }
    return already_exists("creating a temporary file for `{}`: too many collisions", leaf);
}

}  // namespace

AtomicFile::AtomicFile(UniqueFd dir, UniqueFd fd, std::string path, std::string temp_name,
                       std::string temp_path, std::string leaf, mode_t mode)
    : m_dir(std::move(dir)),
      m_fd(std::move(fd)),
      m_path(std::move(path)),
      m_temp_name(std::move(temp_name)),
      m_temp_path(std::move(temp_path)),
      m_leaf(std::move(leaf)),
      m_mode(mode) {}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : m_dir(std::move(other.m_dir)),
      m_fd(std::move(other.m_fd)),
      m_path(std::move(other.m_path)),
      m_temp_name(std::move(other.m_temp_name)),
      m_temp_path(std::move(other.m_temp_path)),
      m_leaf(std::move(other.m_leaf)),
      m_mode(other.m_mode),
      m_done(std::exchange(other.m_done, true)) {}

AtomicFile& AtomicFile::operator=(AtomicFile&& other) noexcept {
    if (this != &other) {
        abort();
        m_dir = std::move(other.m_dir);
        m_fd = std::move(other.m_fd);
        m_path = std::move(other.m_path);
        m_temp_name = std::move(other.m_temp_name);
        m_temp_path = std::move(other.m_temp_path);
        m_leaf = std::move(other.m_leaf);
        m_mode = other.m_mode;
        m_done = std::exchange(other.m_done, true);
    }
    return *this;
}

AtomicFile::~AtomicFile() {
    abort();
}

Result<AtomicFile> AtomicFile::create(const std::string& path, mode_t mode) {
    SplitPath split = TRY(split_path(path));
    UniqueFd dir = TRY(open_file(split.dir, O_RDONLY | O_DIRECTORY));
    std::string temp_name;
    UniqueFd fd = TRY(
        create_temp(dir.get(), split.leaf, temp_name).context(fmt::format("writing `{}`", path)));
    std::string temp_path = split.dir == "/" ? "/" + temp_name : split.dir + "/" + temp_name;
    return AtomicFile(std::move(dir), std::move(fd), path, std::move(temp_name),
                      std::move(temp_path), std::move(split.leaf), mode);
}

Result<void> AtomicFile::write(std::string_view data) {
    if (m_done) {
        return failed_precondition("writing `{}`: already committed or aborted", m_path);
    }
    return write_all(m_fd.get(), data).context(fmt::format("writing `{}`", m_temp_path));
}

Result<void> AtomicFile::commit() {
    if (m_done) {
        return failed_precondition("committing `{}`: already committed or aborted", m_path);
    }
    // Any failure below leaves m_done false, so the destructor (or abort())
    // removes the temporary file.
    if (::fchmod(m_fd.get(), m_mode) != 0) {
        return errno_error("setting mode {:o} on `{}`", m_mode, m_temp_path);
    }
    if (::fsync(m_fd.get()) != 0) {
        return errno_error("syncing `{}`", m_temp_path);
    }
    if (::renameat(m_dir.get(), m_temp_name.c_str(), m_dir.get(), m_leaf.c_str()) != 0) {
        return errno_error("renaming `{}` to `{}`", m_temp_path, m_path);
    }
    m_done = true;
    m_fd.reset();
    // The rename is only durable once the directory entry is on disk.
    if (::fsync(m_dir.get()) != 0) {
        return errno_error("syncing the directory of `{}`", m_path);
    }
    return ok();
}

void AtomicFile::abort() {
    if (!m_done && m_dir.valid()) {
        ::unlinkat(m_dir.get(), m_temp_name.c_str(), 0);
    }
    m_done = true;
    m_fd.reset();
}

Result<void> atomic_write_file(const std::string& path, std::string_view data, mode_t mode) {
    AtomicFile file = TRY(AtomicFile::create(path, mode));
    TRY(file.write(data));
    return file.commit();
}

Result<void> atomic_write_file_at(int dirfd, const std::string& name, std::string_view data,
                                  mode_t mode) {
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
        return invalid_argument("writing `{}`: not a file name", name);
    }
    UniqueFd dir = TRY(open_at(dirfd, ".", O_RDONLY | O_DIRECTORY));
    std::string temp_name;
    UniqueFd fd =
        TRY(create_temp(dir.get(), name, temp_name).context(fmt::format("writing `{}`", name)));
    AtomicFile file(std::move(dir), std::move(fd), name, temp_name, temp_name, name, mode);
    TRY(file.write(data));
    return file.commit();
}

}  // namespace locald::base
