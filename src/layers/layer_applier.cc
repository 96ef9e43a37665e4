#include "layers/layer_applier.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <utility>

#include "base/confined.h"
#include "base/sha256.h"
#include "base/sys.h"
#include "base/unique_fd.h"
#include "layers/internal/fs_util.h"

namespace locald::layers {

namespace {

using base::Result;
using base::UniqueFd;

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kWhiteoutMetaPrefix = ".wh..wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr size_t kReadBuffer = 1 << 20;

// security.capability layouts (linux/capability.h).
constexpr uint32_t kVfsCapRevisionMask = 0xFF000000;
constexpr uint32_t kVfsCapRevision2 = 0x02000000;
constexpr uint32_t kVfsCapRevision3 = 0x03000000;
constexpr size_t kVfsCapV2Size = 20;
constexpr size_t kVfsCapV3Size = 24;

struct DeferredDir {
    std::string path;
    mode_t mode;
    struct timespec times[2];
};

std::string_view dirname_of(std::string_view path) {
    auto slash = path.rfind('/');
    return slash == std::string_view::npos ? std::string_view{} : path.substr(0, slash);
}

std::string_view basename_of(std::string_view path) {
    auto slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// libarchive's message, never null (fmt refuses null strings).
const char* archive_message(archive* ar) {
    const char* message = archive_error_string(ar);
    return message != nullptr ? message : "unknown libarchive error";
}

bool is_whiteout_device(const struct stat& st) {
    return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

class Applier {
public:
    Applier(int root_fd, const ApplyOptions& options) : m_root(root_fd), m_options(options) {}

    Result<ApplyStats> run(ReadFn source);

private:
    Result<void> apply_entry(archive* ar, archive_entry* entry, const std::string& path);
    Result<void> apply_whiteout(const std::string& path);
    Result<void> remove_lower(int dir_fd, const std::string& name, const std::string& path);
    Result<UniqueFd> parent_dir(std::string_view path);
    Result<UniqueFd> ensure_dir(std::string_view path);
    Result<void> set_opaque(int dir_fd, const std::string& name, const std::string& path);
    Result<void> write_file_data(archive* ar, int fd, int64_t size, const std::string& path);
    Result<void> set_owner(int dir_fd, const std::string& leaf, int fd, archive_entry* entry,
                           bool is_symlink, const std::string& path);
    Result<void> set_xattrs(int fd, archive_entry* entry, const std::string& path);
    Result<void> finish_dirs();
    void mark_layer_path(const std::string& path);
    void invalidate_cache() {
        m_cached_parent.clear();
        m_cached_fd.reset();
    }
    base::Error entry_error(const std::string& path, base::Error error) const {
        return std::move(error).context(
            fmt::format("applying layer `{}`: entry `{}`", m_options.layer_digest, path));
    }

    int m_root;
    const ApplyOptions& m_options;
    ApplyStats m_stats;
    // Paths this layer created (and their ancestors): whiteouts only remove
    // lower content, never these.
    std::unordered_set<std::string> m_layer_paths;
    std::vector<DeferredDir> m_dirs;
    // Last resolved parent (tar entries come grouped by directory). Dropped
    // whenever anything is removed, since removal can change what a path
    // resolves to; creation never can.
    std::string m_cached_parent;
    UniqueFd m_cached_fd;
};

void Applier::mark_layer_path(const std::string& path) {
    std::string_view p = path;
    while (!p.empty()) {
        if (!m_layer_paths.emplace(p).second) {
            break;  // ancestors are already there
        }
        p = dirname_of(p);
    }
}

Result<UniqueFd> Applier::ensure_dir(std::string_view path) {
    if (path.empty()) {
        return base::dup_fd(m_root);
    }
    auto opened = base::open_in_root(m_root, path, O_PATH | O_DIRECTORY);
    if (opened) {
        return opened;
    }
    int err = opened.error().errno_value();
    if (err != ENOENT && err != ENOTDIR) {
        return opened.release_error();
    }
    // Create what is missing, one component at a time, each resolved in-root.
    UniqueFd parent = TRY(ensure_dir(dirname_of(path)));
    std::string leaf(basename_of(path));
    struct stat st;
    if (fstatat(parent.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) {
            return base::errno_error("inspecting `{}`", path);
        }
        if (mkdirat(parent.get(), leaf.c_str(), 0755) != 0 && errno != EEXIST) {
            return base::errno_error("creating directory `{}`", path);
        }
        fchmodat(parent.get(), leaf.c_str(), 0755, 0);
        m_stats.implicit_dirs.emplace_back(path);
    } else if (m_options.whiteouts == WhiteoutMode::Overlay && is_whiteout_device(st)) {
        // An entry below a name this layer whited out: the directory comes
        // back, hiding the lower one entirely.
        if (unlinkat(parent.get(), leaf.c_str(), 0) != 0 ||
            mkdirat(parent.get(), leaf.c_str(), 0755) != 0) {
            return base::errno_error("replacing whiteout `{}` with a directory", path);
        }
        invalidate_cache();
        TRY(set_opaque(parent.get(), leaf, std::string(path)));
        m_stats.implicit_dirs.emplace_back(path);
    }
    // Resolve again in-root: an existing symlink to a directory is followed
    // inside the root; a dangling one or a file fails here (ENOENT/ENOTDIR).
    return base::open_in_root(m_root, path, O_PATH | O_DIRECTORY);
}

Result<UniqueFd> Applier::parent_dir(std::string_view path) {
    std::string_view parent = dirname_of(path);
    if (m_cached_fd && parent == m_cached_parent) {
        return base::dup_fd(m_cached_fd.get());
    }
    UniqueFd fd = TRY(ensure_dir(parent));
    m_cached_parent.assign(parent);
    m_cached_fd = TRY(base::dup_fd(fd.get()));
    return fd;
}

Result<void> Applier::set_opaque(int dir_fd, const std::string& name, const std::string& path) {
    auto fd = base::open_at(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!fd) {
        return fd.release_error().context(fmt::format("marking `{}` opaque", path));
    }
    if (fsetxattr(fd->get(), "user.overlay.opaque", "y", 1, 0) != 0) {
        return base::errno_error("marking `{}` opaque (user.overlay.opaque)", path);
    }
    if (m_options.trusted_overlay_xattrs &&
        fsetxattr(fd->get(), "trusted.overlay.opaque", "y", 1, 0) != 0) {
        return base::errno_error("marking `{}` opaque (trusted.overlay.opaque)", path);
    }
    return base::ok();
}

// Removes `name` from `dir_fd` except what this layer put there.
Result<void> Applier::remove_lower(int dir_fd, const std::string& name, const std::string& path) {
    if (!m_layer_paths.contains(path)) {
        return base::remove_all_at(dir_fd, name);
    }
    struct stat st;
    if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return errno == ENOENT ? base::ok() : base::errno_error("inspecting `{}`", path);
    }
    if (!S_ISDIR(st.st_mode)) {
        return base::ok();  // this layer's own entry
    }
    UniqueFd fd = TRY(base::open_at(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    // Collect first: removing while reading a directory is unspecified.
    std::vector<std::string> children = TRY(internal::list_dir(fd.get()));
    for (const auto& child : children) {
        TRY(remove_lower(fd.get(), child, path + "/" + child));
    }
    return base::ok();
}

Result<void> Applier::apply_whiteout(const std::string& path) {
    std::string_view base_name = basename_of(path);
    std::string parent(dirname_of(path));
    m_stats.whiteouts++;
    if (base_name == kOpaqueMarker) {
        if (m_options.whiteouts == WhiteoutMode::Overlay) {
            UniqueFd parent_fd = TRY(ensure_dir(parent));
            if (parent.empty()) {
                return base::ok();  // the root of a layer has no lower to hide
            }
            // The opaque xattr goes on the directory itself, resolved in-root.
            UniqueFd grand = TRY(ensure_dir(dirname_of(parent)));
            mark_layer_path(parent);
            return set_opaque(grand.get(), std::string(basename_of(parent)), parent);
        }
        auto dir =
            base::open_in_root(m_root, parent.empty() ? "." : parent, O_RDONLY | O_DIRECTORY);
        if (!dir) {
            int err = dir.error().errno_value();
            return err == ENOENT || err == ENOTDIR ? base::ok() : dir.release_error();
        }
        invalidate_cache();
        mark_layer_path(parent);
        std::vector<std::string> children = TRY(internal::list_dir(dir->get()));
        for (const auto& child : children) {
            TRY(remove_lower(dir->get(), child, parent.empty() ? child : parent + "/" + child));
        }
        return base::ok();
    }
    std::string name(base_name.substr(kWhiteoutPrefix.size()));
    std::string target = parent.empty() ? name : parent + "/" + name;
    if (m_options.whiteouts == WhiteoutMode::Overlay) {
        UniqueFd parent_fd = TRY(ensure_dir(parent));
        struct stat st;
        if (fstatat(parent_fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (S_ISDIR(st.st_mode) && m_layer_paths.contains(target)) {
                // Re-created in this layer: keep it, but hide the lower one.
                return set_opaque(parent_fd.get(), name, target);
            }
            if (m_layer_paths.contains(target) || is_whiteout_device(st)) {
                return base::ok();
            }
            TRY(base::remove_all_at(parent_fd.get(), name));
            invalidate_cache();
        } else if (errno != ENOENT) {
            return base::errno_error("inspecting `{}`", target);
        }
        if (mknodat(parent_fd.get(), name.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
            return base::errno_error("creating the overlay whiteout for `{}`", target);
        }
        return base::ok();
    }
    auto parent_fd =
        base::open_in_root(m_root, parent.empty() ? "." : parent, O_PATH | O_DIRECTORY);
    if (!parent_fd) {
        int err = parent_fd.error().errno_value();
        // Nothing below a missing parent to remove.
        return err == ENOENT || err == ENOTDIR ? base::ok() : parent_fd.release_error();
    }
    invalidate_cache();
    return remove_lower(parent_fd->get(), name, target);
}

Result<void> Applier::write_file_data(archive* ar, int fd, int64_t size, const std::string& path) {
    const void* block;
    size_t length;
    la_int64_t offset;
    int64_t position = 0;
    bool sparse = false;
    while (true) {
        int rc = archive_read_data_block(ar, &block, &length, &offset);
        if (rc == ARCHIVE_EOF) {
            break;
        }
        if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
            return base::data_loss("reading file data: {}", archive_message(ar));
        }
        if (offset != position) {
            sparse = true;
            if (lseek(fd, offset, SEEK_SET) < 0) {
                return base::errno_error("seeking in `{}`", path);
            }
            position = offset;
        }
        const char* data = static_cast<const char*>(block);
        while (length > 0) {
            ssize_t n = ::write(fd, data, length);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return base::errno_error("writing `{}`", path);
            }
            data += n;
            length -= static_cast<size_t>(n);
            position += n;
        }
    }
    if (sparse || position < size) {
        if (ftruncate(fd, size) != 0) {
            return base::errno_error("sizing `{}`", path);
        }
    }
    return base::ok();
}

Result<void> Applier::set_owner(int dir_fd, const std::string& leaf, int fd, archive_entry* entry,
                                bool is_symlink, const std::string& path) {
    auto uid = static_cast<uint32_t>(archive_entry_uid(entry));
    auto gid = static_cast<uint32_t>(archive_entry_gid(entry));
    if (m_options.ownership == OwnershipMode::RootlessXattr) {
        std::string payload = encode_rootless_xattr(uid, gid);
        if (payload.empty()) {
            return base::ok();
        }
        if (is_symlink) {
            m_stats.unmapped_owners++;  // symlinks cannot carry user.* xattrs
            return base::ok();
        }
        int rc = fd >= 0 ? fsetxattr(fd, kRootlessXattr, payload.data(), payload.size(), 0) : -1;
        if (fd < 0) {
            UniqueFd leaf_fd = TRY(base::open_at(dir_fd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK));
            rc = fsetxattr(leaf_fd.get(), kRootlessXattr, payload.data(), payload.size(), 0);
        }
        if (rc != 0) {
            if (errno == EPERM || errno == ENOTSUP) {
                m_stats.unmapped_owners++;
                return base::ok();
            }
            return base::errno_error("recording the owner of `{}`", path);
        }
        return base::ok();
    }
    int rc = fd >= 0 ? fchown(fd, uid, gid)
                     : fchownat(dir_fd, leaf.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW);
    if (rc != 0) {
        // Inside a user namespace an id outside the mapping is EINVAL: the
        // file keeps the applier's owner (counted, reported once).
        if (errno == EINVAL || errno == EPERM) {
            m_stats.unmapped_owners++;
            return base::ok();
        }
        return base::errno_error("chown {}:{} `{}`", uid, gid, path);
    }
    return base::ok();
}

Result<void> Applier::set_xattrs(int fd, archive_entry* entry, const std::string& path) {
    if (archive_entry_xattr_reset(entry) == 0) {
        return base::ok();
    }
    const char* name;
    const void* value;
    size_t size;
    size_t total = 0;
    while (archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK) {
        std::string_view key = name;
        total += key.size() + size;
        if (total > m_options.limits.max_xattr_bytes) {
            return base::data_loss("xattrs exceed the {}-byte limit",
                                   m_options.limits.max_xattr_bytes);
        }
        std::string data(static_cast<const char*>(value), size);
        bool allowed = false;
        if (key.starts_with("user.")) {
            allowed = !key.starts_with("user.overlay.") && key != kRootlessXattr;
        } else if (key == "security.capability") {
            if (data.size() == kVfsCapV3Size || data.size() == kVfsCapV2Size) {
                uint32_t magic;
                std::memcpy(&magic, data.data(), 4);  // little-endian on disk
                uint32_t revision = magic & kVfsCapRevisionMask;
                if (revision == kVfsCapRevision3 || revision == kVfsCapRevision2) {
                    // Store as v2: the kernel turns it into v3 bound to the
                    // user namespace doing the write (cap_convert_nscap),
                    // never to a rootid chosen by the layer.
                    magic = (magic & ~kVfsCapRevisionMask) | kVfsCapRevision2;
                    std::memcpy(data.data(), &magic, 4);
                    data.resize(kVfsCapV2Size);
                    allowed = true;
                }
            }
        }
        if (!allowed) {
            m_stats.dropped_xattrs++;
            continue;
        }
        if (fsetxattr(fd, name, data.data(), data.size(), 0) != 0) {
            if (errno == EPERM || errno == ENOTSUP || errno == EACCES) {
                m_stats.dropped_xattrs++;
                continue;
            }
            return base::errno_error("setting xattr `{}` on `{}`", key, path);
        }
    }
    return base::ok();
}

Result<void> Applier::apply_entry(archive* ar, archive_entry* entry, const std::string& path) {
    std::string_view base_name = basename_of(path);
    if (base_name.starts_with(kWhiteoutPrefix)) {
        if (base_name.starts_with(kWhiteoutMetaPrefix) && base_name != kOpaqueMarker) {
            // aufs metadata (.wh..wh.plnk, .wh..wh.aufs): meaningless here.
            return base::ok();
        }
        std::string_view target = base_name.substr(kWhiteoutPrefix.size());
        if (base_name != kOpaqueMarker && (target.empty() || target == "." || target == "..")) {
            return base::invalid_argument("malformed whiteout `{}`", base_name);
        }
        if (archive_entry_filetype(entry) == AE_IFDIR) {
            return base::invalid_argument("whiteout `{}` is a directory", base_name);
        }
        return apply_whiteout(path);
    }

    mode_t type = archive_entry_filetype(entry);
    const char* hardlink = archive_entry_hardlink(entry);
    mode_t perm = archive_entry_perm(entry) & 07777;
    std::string leaf(base_name);

    if (type == AE_IFSOCK) {
        m_stats.skipped_sockets++;
        return base::ok();
    }
    if ((type == AE_IFCHR || type == AE_IFBLK) && hardlink == nullptr) {
        if (!m_options.create_devices) {
            m_stats.skipped_devices++;
            return base::ok();
        }
    }

    UniqueFd dir = TRY(parent_dir(path));
    mark_layer_path(path);

    std::string link_target;
    if (hardlink != nullptr) {
        link_target = clean_entry_path(hardlink);
        if (link_target.empty()) {
            return base::invalid_argument("hardlink to the root directory");
        }
        if (link_target == path) {
            return base::ok();  // a link to itself changes nothing
        }
    }

    struct stat existing;
    bool exists = fstatat(dir.get(), leaf.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0;
    if (!exists && errno != ENOENT) {
        return base::errno_error("inspecting `{}`", path);
    }
    bool replaced_whiteout = false;
    if (exists) {
        if (hardlink == nullptr && type == AE_IFDIR && S_ISDIR(existing.st_mode)) {
            // Merge: keep the content, take the new metadata.
        } else {
            replaced_whiteout =
                m_options.whiteouts == WhiteoutMode::Overlay && is_whiteout_device(existing);
            TRY(base::remove_all_at(dir.get(), leaf));
            invalidate_cache();
            exists = false;
        }
    }

    struct timespec times[2];
    times[0].tv_sec =
        archive_entry_atime_is_set(entry) ? archive_entry_atime(entry) : archive_entry_mtime(entry);
    times[0].tv_nsec = archive_entry_atime_is_set(entry) ? archive_entry_atime_nsec(entry)
                                                         : archive_entry_mtime_nsec(entry);
    times[1].tv_sec = archive_entry_mtime(entry);
    times[1].tv_nsec = archive_entry_mtime_nsec(entry);

    if (hardlink != nullptr) {
        // The target is resolved in-root like any path; linkat without
        // AT_SYMLINK_FOLLOW links a symlink itself, never what it points to.
        bool overlay = m_options.whiteouts == WhiteoutMode::Overlay;
        auto target_dir = base::open_in_root(
            m_root, dirname_of(link_target).empty() ? "." : dirname_of(link_target),
            O_PATH | O_DIRECTORY);
        if (!target_dir) {
            int err = target_dir.error().errno_value();
            if (overlay && (err == ENOENT || err == ENOTDIR)) {
                // Its parent is only in a lower layer: resolved at commit.
                m_stats.lower_links.push_back({path, link_target});
                m_stats.hardlinks++;
                return base::ok();
            }
            return target_dir.release_error().context(
                fmt::format("hardlinking to `{}`", link_target));
        }
        std::string target_leaf(basename_of(link_target));
        struct stat target_st;
        if (overlay &&
            fstatat(target_dir->get(), target_leaf.c_str(), &target_st, AT_SYMLINK_NOFOLLOW) == 0 &&
            is_whiteout_device(target_st)) {
            // Linking the marker would turn the link into a whiteout too.
            return base::invalid_argument("hardlink to `{}`, which this layer removed",
                                          link_target);
        }
        if (linkat(target_dir->get(), target_leaf.c_str(), dir.get(), leaf.c_str(), 0) != 0) {
            if (overlay && errno == ENOENT) {
                // A file of a lower layer: resolved at commit (lower_links.h).
                m_stats.lower_links.push_back({path, link_target});
                m_stats.hardlinks++;
                return base::ok();
            }
            return base::errno_error("hardlinking to `{}`", link_target);
        }
        m_stats.hardlinks++;
        return base::ok();
    }

    switch (type) {
        case AE_IFREG: {
            UniqueFd fd =
                TRY(base::open_at(dir.get(), leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
            TRY(write_file_data(ar, fd.get(), archive_entry_size(entry), path));
            TRY(set_owner(dir.get(), leaf, fd.get(), entry, false, path));
            if (fchmod(fd.get(), perm) != 0) {
                return base::errno_error("chmod `{}`", path);
            }
            TRY(set_xattrs(fd.get(), entry, path));
            if (futimens(fd.get(), times) != 0) {
                return base::errno_error("setting times of `{}`", path);
            }
            m_stats.files++;
            return base::ok();
        }
        case AE_IFDIR: {
            if (!exists && mkdirat(dir.get(), leaf.c_str(), 0700) != 0) {
                return base::errno_error("creating directory `{}`", path);
            }
            UniqueFd fd = TRY(base::open_at(dir.get(), leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
            TRY(set_owner(dir.get(), leaf, fd.get(), entry, false, path));
            // Owner-writable until the end so this layer can fill it; the
            // real mode is applied with the times, deepest first.
            if (fchmod(fd.get(), 0700) != 0) {
                return base::errno_error("chmod `{}`", path);
            }
            TRY(set_xattrs(fd.get(), entry, path));
            if (replaced_whiteout) {
                TRY(set_opaque(dir.get(), leaf, path));
            }
            m_dirs.push_back(DeferredDir{path, perm, {times[0], times[1]}});
            m_stats.directories++;
            return base::ok();
        }
        case AE_IFLNK: {
            const char* target = archive_entry_symlink(entry);
            if (target == nullptr || std::strlen(target) > m_options.limits.max_link_target_bytes) {
                return base::invalid_argument("symlink target missing or too long");
            }
            // Stored verbatim: it is only ever resolved inside the root.
            if (symlinkat(target, dir.get(), leaf.c_str()) != 0) {
                return base::errno_error("creating symlink `{}`", path);
            }
            TRY(set_owner(dir.get(), leaf, -1, entry, true, path));
            if (utimensat(dir.get(), leaf.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
                return base::errno_error("setting times of `{}`", path);
            }
            m_stats.symlinks++;
            return base::ok();
        }
        case AE_IFIFO:
        case AE_IFCHR:
        case AE_IFBLK: {
            dev_t device = 0;
            mode_t kind = S_IFIFO;
            if (type != AE_IFIFO) {
                kind = type == AE_IFCHR ? S_IFCHR : S_IFBLK;
                uint64_t major = archive_entry_rdevmajor(entry);
                uint64_t minor = archive_entry_rdevminor(entry);
                if (major > 0xFFFFFFFFu || minor > 0xFFFFFFFFu) {
                    return base::invalid_argument("device number out of range");
                }
                device = makedev(major, minor);
            }
            if (mknodat(dir.get(), leaf.c_str(), kind | 0600, device) != 0) {
                if (type != AE_IFIFO && (errno == EPERM || errno == EACCES)) {
                    m_stats.skipped_devices++;
                    return base::ok();
                }
                return base::errno_error("creating `{}`", path);
            }
            TRY(set_owner(dir.get(), leaf, -1, entry, false, path));
            if (fchmodat(dir.get(), leaf.c_str(), perm, AT_SYMLINK_NOFOLLOW) != 0) {
                return base::errno_error("chmod `{}`", path);
            }
            if (utimensat(dir.get(), leaf.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
                return base::errno_error("setting times of `{}`", path);
            }
            if (type == AE_IFIFO) {
                m_stats.fifos++;
            } else {
                m_stats.devices++;
            }
            return base::ok();
        }
        default:
            return base::unsupported("unsupported tar entry type {:o}", type);
    }
}

Result<void> Applier::finish_dirs() {
    // Deepest first: a 0000 directory must not block setting its children.
    std::stable_sort(m_dirs.begin(), m_dirs.end(), [](const DeferredDir& a, const DeferredDir& b) {
        return std::count(a.path.begin(), a.path.end(), '/') >
               std::count(b.path.begin(), b.path.end(), '/');
    });
    for (const auto& d : m_dirs) {
        auto fd = base::open_in_root(m_root, d.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (!fd) {
            continue;  // replaced or removed later in the layer
        }
        if (fchmod(fd->get(), d.mode) != 0) {
            return entry_error(d.path, base::errno_error("chmod"));
        }
        if (futimens(fd->get(), d.times) != 0) {
            return entry_error(d.path, base::errno_error("setting times"));
        }
    }
    return base::ok();
}

// Decompresses and hashes (DiffID) on a second thread, a few chunks ahead
// of libarchive and the filesystem work: inflating and writing overlap.
// Three stages on their own threads: inflate (producer), the DiffID hash
// (hasher) and tar extraction (the caller, through next()). A chunk is
// reused once both the hasher and the caller are done with it.
class Prefetcher {
public:
    Prefetcher(Decompressor* decompressor, base::Sha256* hash)
        : m_decompressor(decompressor), m_hash(hash) {
        for (size_t i = 0; i < kChunks; i++) {
            m_chunks[i].data.resize(kReadBuffer);
            m_free.push_back(i);
        }
        m_thread = std::thread([this] { produce(); });
        m_hasher = std::thread([this] { hash_chunks(); });
    }
    ~Prefetcher() {
        {
            std::lock_guard lock(m_mutex);
            m_stop = true;
        }
        m_cv.notify_all();
        m_thread.join();
        m_hasher.join();
    }
    // The next chunk of uncompressed data (empty at the end), valid until
    // the next call.
    Result<std::string_view> next() {
        std::unique_lock lock(m_mutex);
        if (m_current >= 0) {
            release(static_cast<size_t>(m_current));
            m_current = -1;
        }
        m_cv.wait(lock, [&] { return !m_filled.empty() || m_done; });
        if (m_filled.empty()) {
            if (!m_error) {
                return m_error.error();
            }
            return std::string_view{};
        }
        size_t index = m_filled.front();
        m_filled.pop_front();
        m_current = static_cast<int>(index);
        return std::string_view(m_chunks[index].data.data(), m_chunks[index].size);
    }

private:
    static constexpr size_t kChunks = 6;
    struct Chunk {
        std::vector<char> data;
        size_t size = 0;
        int users = 0;  // the caller and the hasher
    };
    // Under m_mutex.
    void release(size_t index) {
        if (--m_chunks[index].users == 0) {
            m_free.push_back(index);
            m_cv.notify_all();
        }
    }
    void produce() {
        while (true) {
            size_t index;
            {
                std::unique_lock lock(m_mutex);
                m_cv.wait(lock, [&] { return !m_free.empty() || m_stop; });
                if (m_stop) {
                    return;
                }
                index = m_free.front();
                m_free.pop_front();
            }
            auto n = m_decompressor->read(m_chunks[index].data.data(), kReadBuffer);
            std::lock_guard lock(m_mutex);
            if (!n) {
                m_error = n.release_error();
                m_done = true;
                m_cv.notify_all();
                return;
            }
            if (*n == 0) {
                m_done = true;
                m_cv.notify_all();
                return;
            }
            m_chunks[index].size = *n;
            m_chunks[index].users = 2;
            m_filled.push_back(index);
            m_to_hash.push_back(index);
            m_cv.notify_all();
        }
    }
    // Hashes every chunk in order; ends when the producer is done and
    // everything it produced is hashed (or when stopped).
    void hash_chunks() {
        std::unique_lock lock(m_mutex);
        while (true) {
            m_cv.wait(lock, [&] { return !m_to_hash.empty() || m_done || m_stop; });
            if (m_to_hash.empty()) {
                return;
            }
            size_t index = m_to_hash.front();
            m_to_hash.pop_front();
            lock.unlock();
            m_hash->update(m_chunks[index].data.data(), m_chunks[index].size);
            lock.lock();
            release(index);
        }
    }

    Decompressor* m_decompressor;
    base::Sha256* m_hash;
    Chunk m_chunks[kChunks];
    std::deque<size_t> m_free;
    std::deque<size_t> m_filled;
    std::deque<size_t> m_to_hash;
    int m_current = -1;
    bool m_done = false;
    bool m_stop = false;
    Result<void> m_error = base::ok();
    std::mutex m_mutex;
    std::condition_variable m_cv;
    std::thread m_thread;
    std::thread m_hasher;
};

struct ReadState {
    Prefetcher* prefetcher;
    Result<void> error;
};

la_ssize_t archive_read_callback(archive*, void* opaque, const void** out) {
    auto* state = static_cast<ReadState*>(opaque);
    auto chunk = state->prefetcher->next();
    if (!chunk) {
        state->error = chunk.release_error();
        return -1;
    }
    *out = chunk->data();
    return static_cast<la_ssize_t>(chunk->size());
}

Result<ApplyStats> Applier::run(ReadFn source) {
    base::Sha256 blob_hash;
    uint64_t blob_bytes = 0;
    ReadFn hashing_source = [&](char* buffer, size_t size) -> Result<size_t> {
        size_t n = TRY(source(buffer, size));
        if (m_options.hash_compressed) {
            blob_hash.update(buffer, n);
        }
        blob_bytes += n;
        return n;
    };
    auto decompressor =
        TRY(Decompressor::create(hashing_source, m_options.limits.max_uncompressed_bytes));
    m_stats.compression = decompressor->compression();
    base::Sha256 diff_hash;
    auto prefetcher = std::make_unique<Prefetcher>(decompressor.get(), &diff_hash);
    ReadState state{prefetcher.get(), base::ok()};

    std::unique_ptr<archive, int (*)(archive*)> ar(archive_read_new(), archive_read_free);
    if (!ar) {
        return base::internal_error("archive_read_new failed");
    }
    archive_read_support_format_tar(ar.get());
    archive_read_support_filter_none(ar.get());
    if (archive_read_open(ar.get(), &state, nullptr, archive_read_callback, nullptr) !=
        ARCHIVE_OK) {
        if (!state.error) {
            return entry_error("<header>", state.error.release_error());
        }
        return base::data_loss("applying layer `{}`: not a tar stream: {}", m_options.layer_digest,
                               archive_message(ar.get()));
    }
    std::string last = "<start of archive>";
    while (true) {
        archive_entry* entry = nullptr;
        int rc = archive_read_next_header(ar.get(), &entry);
        if (rc == ARCHIVE_EOF) {
            break;
        }
        if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
            if (!state.error) {
                return base::Error(
                    state.error.error().kind(),
                    fmt::format("applying layer `{}`: after entry `{}`: {}", m_options.layer_digest,
                                last, state.error.error().message()));
            }
            return base::data_loss("applying layer `{}`: after entry `{}`: corrupt tar: {}",
                                   m_options.layer_digest, last, archive_message(ar.get()));
        }
        const char* raw_name = archive_entry_pathname(entry);
        std::string name = raw_name ? raw_name : "";
        if (name.size() > m_options.limits.max_path_bytes) {
            return base::data_loss("applying layer `{}`: entry name of {} bytes exceeds {}",
                                   m_options.layer_digest, name.size(),
                                   m_options.limits.max_path_bytes);
        }
        last = name;
        if (++m_stats.entries > m_options.limits.max_entries) {
            return base::data_loss("applying layer `{}`: more than {} entries (at `{}`)",
                                   m_options.layer_digest, m_options.limits.max_entries, name);
        }
        std::string path = clean_entry_path(name);
        if (path.empty()) {
            continue;  // the root itself: its metadata belongs to the caller
        }
        auto applied = apply_entry(ar.get(), entry, path);
        if (!applied) {
            if (!state.error) {
                return entry_error(name, state.error.release_error());
            }
            return entry_error(name, applied.release_error());
        }
    }
    // The DiffID covers the whole uncompressed stream, end-of-archive blocks
    // and padding included: drain what libarchive did not ask for.
    while (true) {
        auto chunk = prefetcher->next();
        if (!chunk) {
            return entry_error(last, chunk.release_error());
        }
        if (chunk->empty()) {
            break;
        }
    }
    prefetcher.reset();  // joined: the hashes and counters are final
    if (!state.error) {
        return entry_error(last, state.error.release_error());
    }
    m_stats.diff_id = "sha256:" + diff_hash.hex_digest();
    if (m_options.hash_compressed) {
        m_stats.compressed_digest = "sha256:" + blob_hash.hex_digest();
    }
    m_stats.compressed_bytes = blob_bytes;
    m_stats.uncompressed_bytes = decompressor->output_bytes();
    if (!m_options.expected_diff_id.empty() && m_stats.diff_id != m_options.expected_diff_id) {
        return base::data_loss(
            "layer `{}`: DiffID mismatch: the config says `{}`, the layer is `{}`",
            m_options.layer_digest, m_options.expected_diff_id, m_stats.diff_id);
    }
    TRY(finish_dirs());
    if (m_stats.skipped_devices > 0) {
        m_stats.warnings.push_back(fmt::format(
            "layer `{}`: skipped {} device node(s) (only created when unpacking as root)",
            m_options.layer_digest, m_stats.skipped_devices));
    }
    if (m_stats.unmapped_owners > 0) {
        m_stats.warnings.push_back(fmt::format(
            "layer `{}`: {} entr{} kept the unpacking user's owner (id not mapped or not "
            "recordable)",
            m_options.layer_digest, m_stats.unmapped_owners,
            m_stats.unmapped_owners == 1 ? "y" : "ies"));
    }
    if (m_stats.dropped_xattrs > 0) {
        m_stats.warnings.push_back(
            fmt::format("layer `{}`: dropped {} xattr(s) not on the allowlist",
                        m_options.layer_digest, m_stats.dropped_xattrs));
    }
    return std::move(m_stats);
}

}  // namespace

std::string clean_entry_path(std::string_view name) {
    std::vector<std::string_view> parts;
    size_t i = 0;
    while (i <= name.size()) {
        size_t j = name.find('/', i);
        if (j == std::string_view::npos) {
            j = name.size();
        }
        std::string_view part = name.substr(i, j - i);
        if (part.empty() || part == ".") {
            // skip
        } else if (part == "..") {
            if (!parts.empty()) {
                parts.pop_back();
            }
        } else {
            parts.push_back(part);
        }
        i = j + 1;
    }
    std::string out;
    for (auto part : parts) {
        if (!out.empty()) {
            out += '/';
        }
        out += part;
    }
    return out;
}

namespace {
void put_varint(std::string& out, uint64_t value) {
    while (value >= 0x80) {
        out += static_cast<char>((value & 0x7F) | 0x80);
        value >>= 7;
    }
    out += static_cast<char>(value);
}
}  // namespace

std::string encode_rootless_xattr(uint32_t uid, uint32_t gid) {
    if (uid == 0 && gid == 0) {
        return {};
    }
    constexpr uint32_t kNoopId = 0xFFFFFFFFu;
    std::string out;
    out += '\x08';
    put_varint(out, uid == 0 ? kNoopId : uid);
    out += '\x10';
    put_varint(out, gid == 0 ? kNoopId : gid);
    return out;
}

base::Result<std::pair<uint32_t, uint32_t>> decode_rootless_xattr(std::string_view payload) {
    uint32_t ids[2] = {0, 0};
    size_t i = 0;
    while (i < payload.size()) {
        uint8_t tag = static_cast<uint8_t>(payload[i++]);
        uint64_t value = 0;
        int shift = 0;
        while (true) {
            if (i >= payload.size() || shift > 63) {
                return base::invalid_argument("malformed user.rootlesscontainers payload");
            }
            uint8_t b = static_cast<uint8_t>(payload[i++]);
            value |= uint64_t{b & 0x7Fu} << shift;
            shift += 7;
            if ((b & 0x80) == 0) {
                break;
            }
        }
        if ((tag & 7) != 0) {
            return base::invalid_argument("malformed user.rootlesscontainers payload");
        }
        uint32_t id =
            static_cast<uint32_t>(value) == 0xFFFFFFFFu ? 0 : static_cast<uint32_t>(value);
        if ((tag >> 3) == 1) {
            ids[0] = id;
        } else if ((tag >> 3) == 2) {
            ids[1] = id;
        }
    }
    return std::pair<uint32_t, uint32_t>{ids[0], ids[1]};
}

base::Result<ApplyStats> apply_layer(int root_fd, ReadFn source, const ApplyOptions& options) {
    Applier applier(root_fd, options);
    return applier.run(std::move(source));
}

base::Result<ApplyStats> apply_layer(int root_fd, int blob_fd, const ApplyOptions& options) {
    ReadFn source = [blob_fd](char* buffer, size_t size) -> base::Result<size_t> {
        while (true) {
            ssize_t n = ::read(blob_fd, buffer, size);
            if (n >= 0) {
                return static_cast<size_t>(n);
            }
            if (errno != EINTR) {
                return base::errno_error("reading the layer blob");
            }
        }
    };
    return apply_layer(root_fd, std::move(source), options);
}

}  // namespace locald::layers
