#include "layers/snapshot_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

#include "base/confined.h"
#include "base/sha256.h"
#include "base/sys.h"
#include "base/temp_dir.h"
#include "layers/internal/fs_util.h"
#include "layers/lower_links.h"

namespace locald::layers {

namespace {

using base::Result;
using base::UniqueFd;

std::string hex_of(const std::string& digest) {
    return digest.substr(digest.find(':') + 1);
}

struct Pending {
    size_t index;
    base::TempDir dir;
    ApplyStats stats;
};

// Gives the layer's implicit directories (created only as parents) the
// metadata of the same directory in the nearest lower snapshot, so the
// overlay does not replace /tmp's 1777 with 0755.
void fix_implicit_dirs(const std::string& fs, const std::vector<std::string>& implicit,
                       const std::vector<std::string>& lower_fs) {
    if (implicit.empty() || lower_fs.empty()) {
        return;
    }
    auto root = base::open_file(fs, O_PATH | O_DIRECTORY);
    if (!root) {
        return;
    }
    for (const auto& path : implicit) {
        for (auto it = lower_fs.rbegin(); it != lower_fs.rend(); ++it) {
            auto lower_root = base::open_file(*it, O_PATH | O_DIRECTORY);
            if (!lower_root) {
                break;
            }
            auto lower = base::open_in_root(lower_root->get(), path, O_PATH | O_NOFOLLOW);
            if (!lower) {
                continue;  // not in this layer: look further down
            }
            auto st = base::fstat_fd(lower->get());
            if (!st || !S_ISDIR(st->st_mode)) {
                break;  // hidden by a non-directory: no lower directory
            }
            auto own = base::open_in_root(root->get(), path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
            if (own) {
                (void)fchown(own->get(), st->st_uid, st->st_gid);
                (void)fchmod(own->get(), st->st_mode & 07777);
                struct timespec times[2] = {st->st_atim, st->st_mtim};
                (void)futimens(own->get(), times);
            }
            break;
        }
    }
}

// flock that retries EINTR; `nonblocking` failures come back as EWOULDBLOCK.
base::Result<void> flock_fd(int fd, int op, const std::string& what) {
    while (flock(fd, op) != 0) {
        if (errno != EINTR) {
            return base::errno_error("locking `{}`", what);
        }
    }
    return base::ok();
}

constexpr const char* kLeaseDir = ".leases";
constexpr const char* kLockFile = ".lock";

base::Result<UniqueFd> open_lock(const std::string& root) {
    std::string path = root + "/" + kLockFile;
    return base::open_file(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
}

}  // namespace

SnapshotLease& SnapshotLease::operator=(SnapshotLease&& other) noexcept {
    if (this != &other) {
        drop();
        m_path = std::move(other.m_path);
        m_fd = std::move(other.m_fd);
        m_bound = other.m_bound;
        other.m_path.clear();
    }
    return *this;
}

SnapshotLease::~SnapshotLease() {
    drop();
}

void SnapshotLease::drop() {
    if (m_fd.valid() && !m_bound) {
        (void)unlink(m_path.c_str());
    }
    m_fd.reset();
}

base::Result<void> SnapshotLease::bind_to(const std::string& dir) {
    if (!m_fd.valid()) {
        return base::failed_precondition("binding an empty snapshot lease");
    }
    char* resolved = realpath(dir.c_str(), nullptr);
    if (resolved == nullptr) {
        return base::errno_error("binding a snapshot lease to `{}`", dir);
    }
    std::string absolute(resolved);
    free(resolved);
    if (absolute.find('\n') != std::string::npos) {
        return base::invalid_argument("cannot bind a snapshot lease to `{}`", dir);
    }
    // One append: a concurrent reader sees the chain lines either way.
    TRY(base::write_all(m_fd.get(), "dir " + absolute + "\n"));
    m_bound = true;
    return base::ok();
}

base::Result<SnapshotLease> SnapshotStore::lease(const std::vector<std::string>& chain_ids) const {
    std::string content;
    for (const auto& chain : chain_ids) {
        if (!is_valid_sha256_digest(chain)) {
            return base::invalid_argument("invalid chain ID `{}`", chain);
        }
        content += "chain " + chain + "\n";
    }
    TRY(base::mkdir_p(m_root + "/" + kLeaseDir, 0700));
    // Shared: leases are created concurrently, never during a prune.
    UniqueFd lock = TRY(open_lock(m_root));
    TRY(flock_fd(lock.get(), LOCK_SH, m_root + "/" + kLockFile));
    std::string path = m_root + "/" + kLeaseDir + "/lease-XXXXXX";
    int fd = mkostemp(path.data(), O_CLOEXEC | O_APPEND);
    if (fd < 0) {
        return base::errno_error("creating a snapshot lease in `{}/{}`", m_root, kLeaseDir);
    }
    SnapshotLease out;
    out.m_fd = UniqueFd(fd);
    out.m_path = path;
    TRY(flock_fd(fd, LOCK_SH, path));
    TRY(base::write_all(fd, content));
    return out;
}

base::Result<UniqueFd> SnapshotStore::lock_exclusive() const {
    UniqueFd lock = TRY(open_lock(m_root));
    TRY(flock_fd(lock.get(), LOCK_EX, m_root + "/" + kLockFile));
    return lock;
}

base::Result<LeaseScan> SnapshotStore::scan_leases() const {
    LeaseScan scan;
    std::string dir = m_root + "/" + kLeaseDir;
    auto dir_fd = base::open_file(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (!dir_fd) {
        if (dir_fd.error().errno_value() == ENOENT) {
            return scan;
        }
        return dir_fd.release_error();
    }
    for (const auto& name : TRY(internal::list_dir(dir_fd->get()))) {
        auto fd = base::open_at(dir_fd->get(), name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (!fd) {
            if (fd.error().errno_value() == ENOENT) {
                continue;  // its holder dropped it meanwhile
            }
            return fd.release_error();
        }
        bool locked = flock(fd->get(), LOCK_EX | LOCK_NB) != 0;
        if (locked && errno != EWOULDBLOCK) {
            return base::errno_error("checking the lease `{}/{}`", dir, name);
        }
        std::string text = TRY(base::read_all(fd->get(), 1 << 20));
        std::vector<std::string> chains;
        std::string bound_dir;
        size_t pos = 0;
        while (pos < text.size()) {
            size_t end = text.find('\n', pos);
            if (end == std::string::npos) {
                break;  // a line being appended: not there yet
            }
            std::string line = text.substr(pos, end - pos);
            pos = end + 1;
            if (line.starts_with("chain ") && is_valid_sha256_digest(line.substr(6))) {
                chains.push_back(line.substr(6));
            } else if (line.starts_with("dir ")) {
                bound_dir = line.substr(4);
            }
        }
        bool live = locked;
        if (!live && !bound_dir.empty()) {
            struct stat st;
            live = lstat(bound_dir.c_str(), &st) == 0 || errno != ENOENT;
        }
        if (!live) {
            if (unlinkat(dir_fd->get(), name.c_str(), 0) != 0 && errno != ENOENT) {
                return base::errno_error("removing the stale lease `{}/{}`", dir, name);
            }
            scan.stale_removed++;
            continue;
        }
        scan.holder_active = scan.holder_active || locked;
        scan.chain_ids.insert(chains.begin(), chains.end());
    }
    return scan;
}

base::Result<std::vector<std::string>> SnapshotStore::leftovers() const {
    UniqueFd root = TRY(base::open_file(m_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    std::vector<std::string> out;
    for (const auto& name : TRY(internal::list_dir(root.get()))) {
        if (name.starts_with(".tmp-") || name.starts_with(".rm-")) {
            out.push_back(m_root + "/" + name);
        }
    }
    return out;
}

std::vector<std::string> chain_ids(const std::vector<std::string>& diff_ids) {
    std::vector<std::string> out;
    for (const auto& diff_id : diff_ids) {
        if (out.empty()) {
            out.push_back(diff_id);
        } else {
            out.push_back("sha256:" + base::sha256_hex(out.back() + " " + diff_id));
        }
    }
    return out;
}

bool is_valid_sha256_digest(std::string_view digest) {
    if (digest.size() != 71 || !digest.starts_with("sha256:")) {
        return false;
    }
    for (char c : digest.substr(7)) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

base::Result<SnapshotStore> SnapshotStore::open(const std::string& data_dir) {
    std::string root = data_dir + "/snapshots";
    TRY(base::mkdir_p(root, 0700));
    return SnapshotStore(root);
}

std::string SnapshotStore::fs_path(const std::string& chain_id) const {
    return m_root + "/" + hex_of(chain_id) + "/fs";
}

bool SnapshotStore::has(const std::string& chain_id) const {
    if (!is_valid_sha256_digest(chain_id)) {
        return false;
    }
    struct stat st;
    return lstat(fs_path(chain_id).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

base::Result<std::vector<std::string>> SnapshotStore::ensure(const std::vector<LayerSource>& layers,
                                                             const SnapshotApplyOptions& options,
                                                             std::vector<std::string>* warnings) {
    std::vector<std::string> diff_ids;
    for (const auto& layer : layers) {
        if (!is_valid_sha256_digest(layer.diff_id)) {
            return base::invalid_argument("invalid DiffID `{}`", layer.diff_id);
        }
        diff_ids.push_back(layer.diff_id);
    }
    auto chains = chain_ids(diff_ids);
    // Claimed before checking what exists, so a prune cannot remove a
    // snapshot between has() and the caller's use (and leaves our
    // temporary directories alone).
    auto claim = TRY(lease(chains));
    std::vector<size_t> missing;
    for (size_t i = 0; i < layers.size(); i++) {
        if (!has(chains[i])) {
            missing.push_back(i);
        }
    }

    std::vector<std::optional<Pending>> pending(layers.size());
    std::optional<base::Error> first_error;
    std::mutex mutex;
    std::atomic<size_t> next{0};
    auto worker = [&]() {
        while (true) {
            size_t slot = next.fetch_add(1);
            if (slot >= missing.size()) {
                return;
            }
            {
                std::lock_guard lock(mutex);
                if (first_error) {
                    return;
                }
            }
            size_t i = missing[slot];
            auto result = [&]() -> Result<Pending> {
                auto dir = TRY(base::TempDir::create_in(m_root, ".tmp"));
                std::string fs = dir.join("fs");
                if (mkdir(fs.c_str(), 0755) != 0) {
                    return base::errno_error("creating `{}`", fs);
                }
                UniqueFd fs_fd = TRY(base::open_file(fs, O_RDONLY | O_DIRECTORY));
                UniqueFd blob = TRY(layers[i].open());
                ApplyOptions apply;
                apply.layer_digest = layers[i].blob_digest;
                apply.expected_diff_id = layers[i].diff_id;
                apply.whiteouts = WhiteoutMode::Overlay;
                apply.ownership = options.ownership;
                apply.create_devices = options.create_devices;
                apply.trusted_overlay_xattrs = options.trusted_overlay_xattrs;
                apply.limits = options.limits;
                apply.hash_compressed = false;  // verified by the store on ingest
                auto stats = TRY(apply_layer(fs_fd.get(), blob.get(), apply));
                return Pending{i, std::move(dir), std::move(stats)};
            }();
            std::lock_guard lock(mutex);
            if (!result) {
                if (!first_error) {
                    first_error = result.release_error();
                }
                return;
            }
            pending[i] = result.release_value();
        }
    };
    unsigned threads = options.parallel ? options.parallel : std::thread::hardware_concurrency();
    threads = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>(missing.size())));
    if (!missing.empty()) {
        std::vector<std::thread> pool;
        for (unsigned t = 1; t < threads; t++) {
            pool.emplace_back(worker);
        }
        worker();
        for (auto& thread : pool) {
            thread.join();
        }
    }
    if (first_error) {
        return std::move(*first_error);  // temporary directories removed by TempDir
    }

    std::vector<std::string> paths;
    for (size_t i = 0; i < layers.size(); i++) {
        if (pending[i]) {
            auto& p = *pending[i];
            std::string fs = p.dir.join("fs");
            if (!p.stats.lower_links.empty()) {
                // Every lower snapshot exists now (committed bottom-up).
                UniqueFd own = TRY(base::open_file(fs, O_RDONLY | O_DIRECTORY));
                std::vector<UniqueFd> lower_fds;
                std::vector<int> lowers;
                for (auto it = paths.rbegin(); it != paths.rend(); ++it) {
                    lower_fds.push_back(TRY(base::open_file(*it, O_RDONLY | O_DIRECTORY)));
                    lowers.push_back(lower_fds.back().get());
                }
                auto linked = TRY(resolve_lower_links(own.get(), lowers, p.stats.lower_links,
                                                      layers[i].blob_digest));
                if (linked.skipped_devices > 0) {
                    p.stats.warnings.push_back(fmt::format(
                        "layer `{}`: skipped {} hardlinked device nodes (need real root)",
                        layers[i].blob_digest, linked.skipped_devices));
                }
            }
            fix_implicit_dirs(fs, p.stats.implicit_dirs, paths);
            std::string meta = fmt::format(
                "{{\"chain_id\":\"{}\",\"diff_id\":\"{}\",\"parent\":\"{}\",\"layer\":\"{}\"}}\n",
                chains[i], layers[i].diff_id, i ? chains[i - 1] : "", layers[i].blob_digest);
            TRY(base::write_file(p.dir.join("meta.json"), meta, 0444));
            TRY(base::fsync_dir(fs));
            if (chmod(p.dir.path().c_str(), 0555) != 0) {
                return base::errno_error("making snapshot `{}` read-only", chains[i]);
            }
            auto renamed = base::rename_at(AT_FDCWD, p.dir.path(), AT_FDCWD,
                                           m_root + "/" + hex_of(chains[i]), RENAME_NOREPLACE);
            if (renamed) {
                (void)p.dir.release();
            } else if (renamed.error().errno_value() != EEXIST) {
                return renamed.release_error().context(
                    fmt::format("committing snapshot `{}`", chains[i]));
            }
            if (warnings) {
                warnings->insert(warnings->end(), p.stats.warnings.begin(), p.stats.warnings.end());
            }
        }
        paths.push_back(fs_path(chains[i]));
    }
    TRY(base::fsync_dir(m_root));
    return paths;
}

base::Result<std::vector<std::string>> SnapshotStore::list() const {
    UniqueFd root = TRY(base::open_file(m_root, O_RDONLY | O_DIRECTORY));
    std::vector<std::string> out;
    for (const auto& name : TRY(internal::list_dir(root.get()))) {
        if (is_valid_sha256_digest("sha256:" + name)) {
            out.push_back("sha256:" + name);
        }
    }
    return out;
}

base::Result<void> SnapshotStore::remove(const std::string& chain_id) {
    if (!is_valid_sha256_digest(chain_id)) {
        return base::invalid_argument("invalid chain ID `{}`", chain_id);
    }
    // Rename first so a half-removed snapshot is never mistaken for a whole one.
    std::string path = m_root + "/" + hex_of(chain_id);
    auto dir = TRY(base::TempDir::create_in(m_root, ".rm"));
    std::string doomed = dir.join("s");
    // Moving a directory to another parent updates its "..": it needs
    // write permission on the (read-only) snapshot itself.
    (void)chmod(path.c_str(), 0755);
    auto renamed = base::rename_path(path, doomed);
    if (!renamed) {
        if (renamed.error().errno_value() == ENOENT) {
            return base::ok();
        }
        return renamed.release_error();
    }
    return dir.remove();
}

base::Result<std::vector<std::string>> SnapshotStore::prune(const std::set<std::string>& keep) {
    auto lock = TRY(lock_exclusive());
    auto leased = TRY(scan_leases());
    std::vector<std::string> removed;
    for (const auto& chain : TRY(list())) {
        if (!keep.contains(chain) && !leased.chain_ids.contains(chain)) {
            TRY(remove(chain));
            removed.push_back(chain);
        }
    }
    return removed;
}

}  // namespace locald::layers
