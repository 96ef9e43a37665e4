#include "layers/snapshot_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include "base/confined.h"
#include "base/sha256.h"
#include "base/sys.h"
#include "base/temp_dir.h"
#include "layers/internal/fs_util.h"

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

}  // namespace

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
    std::vector<std::string> removed;
    for (const auto& chain : TRY(list())) {
        if (!keep.contains(chain)) {
            TRY(remove(chain));
            removed.push_back(chain);
        }
    }
    return removed;
}

}  // namespace locald::layers
