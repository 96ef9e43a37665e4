// layers/snapshot_store.h — one extracted directory per layer, keyed by chain ID.
//
// Contract:
// - Layout: `<data>/snapshots/<chain-id hex>/{fs/,meta.json}`; `fs/` is the
//   layer applied alone in Overlay mode (whiteouts as overlay markers), so
//   a snapshot depends only on its chain and is shared by every image whose
//   layers start with that chain.
// - A snapshot appears only whole: the layer is applied into
//   `<data>/snapshots/.tmp-XXXXXX/`, its DiffID verified against the
//   config's, its implicit directories given the metadata of the same
//   directory in the lower snapshots, the snapshot made read-only (0555
//   top directory), and only then renamed into place. Any failure removes
//   the temporary directory: nothing half-applied is ever visible.
// - The missing layers of an image are applied in parallel (each into its
//   own directory), then committed bottom-up.
// - Ownership is whatever the calling process is: run inside the container
//   user namespace (layers/unpack.h) for rootless images, so removal must go
//   through the same namespace.
// - In-use snapshots are protected by leases: `<root>/.leases/<name>` lists
//   chain IDs. A lease is live while its holder keeps it flock'd (the
//   process preparing a rootfs) or, once bound to a directory (a
//   container's writable layer), while that directory exists. Leases are
//   created under a shared flock of `<root>/.lock` and pruning holds it
//   exclusively, so a snapshot is never removed between a holder's check
//   and its use. Stale leases (holder gone, directory gone) are deleted by
//   prune.
// Depends on base and layers only; blobs come from a caller-supplied opener.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "layers/layer_applier.h"

namespace locald::layers {

// "sha256:…" chain IDs of `diff_ids` (OCI image-spec config.md: ChainID(L0)
// = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))).
std::vector<std::string> chain_ids(const std::vector<std::string>& diff_ids);

// True for "sha256:" + 64 lowercase hex characters.
bool is_valid_sha256_digest(std::string_view digest);

struct LayerSource {
    std::string blob_digest;  // "sha256:…", for messages
    std::string diff_id;      // from the config's rootfs.diff_ids
    std::function<base::Result<base::UniqueFd>()> open;
};

struct SnapshotApplyOptions {
    OwnershipMode ownership = OwnershipMode::Preserve;
    bool create_devices = false;
    bool trusted_overlay_xattrs = false;
    ApplyLimits limits;
    unsigned parallel = 0;  // 0: one thread per core
};

// A claim on some snapshots (see the contract). Move-only; dropping an
// unbound lease deletes it, dropping a bound one keeps it on disk.
class SnapshotLease {
public:
    SnapshotLease() = default;
    SnapshotLease(SnapshotLease&&) noexcept = default;
    SnapshotLease& operator=(SnapshotLease&& other) noexcept;
    SnapshotLease(const SnapshotLease&) = delete;
    SnapshotLease& operator=(const SnapshotLease&) = delete;
    ~SnapshotLease();

    bool valid() const { return m_fd.valid(); }
    const std::string& path() const { return m_path; }
    // Keeps the lease alive after this process is gone, for as long as
    // `dir` (an existing directory; recorded as its real path) exists.
    base::Result<void> bind_to(const std::string& dir);

private:
    friend class SnapshotStore;
    void drop();
    std::string m_path;
    base::UniqueFd m_fd;
    bool m_bound = false;
};

// What the live leases of a store hold (read under the exclusive lock).
struct LeaseScan {
    std::set<std::string> chain_ids;  // every chain ID some live lease names
    bool holder_active = false;       // a live lease is flock'd: a process may be applying
    size_t stale_removed = 0;         // dead lease files deleted
};

class SnapshotStore {
public:
    // Opens (creating, 0700) `<data_dir>/snapshots`.
    static base::Result<SnapshotStore> open(const std::string& data_dir);

    const std::string& root() const { return m_root; }
    // `<root>/<hex>/fs`.
    std::string fs_path(const std::string& chain_id) const;
    bool has(const std::string& chain_id) const;

    // Makes sure every layer of an image has its snapshot; returns the fs
    // paths bottom-most first. Warnings from the appliers go to `warnings`.
    base::Result<std::vector<std::string>> ensure(const std::vector<LayerSource>& layers,
                                                  const SnapshotApplyOptions& options,
                                                  std::vector<std::string>* warnings = nullptr);

    // Chain IDs present.
    base::Result<std::vector<std::string>> list() const;
    base::Result<void> remove(const std::string& chain_id);
    // Removes every snapshot neither in `keep` (chain IDs) nor leased;
    // returns the removed. Takes the exclusive lock itself.
    base::Result<std::vector<std::string>> prune(const std::set<std::string>& keep);

    // Claims `chain_ids` (they need not exist yet) until the lease is dropped
    // or, when bound, its directory removed. Waits while a prune runs.
    base::Result<SnapshotLease> lease(const std::vector<std::string>& chain_ids) const;
    // The exclusive lock a pruner holds while deciding and removing (dropping
    // the fd releases it). Waits for lease creation in progress.
    base::Result<base::UniqueFd> lock_exclusive() const;
    // Under lock_exclusive(): the chain IDs of live leases; deletes dead
    // lease files.
    base::Result<LeaseScan> scan_leases() const;
    // Temporary directories of applies and removals that did not finish
    // (`.tmp-*`, `.rm-*`). Only safe to delete when no holder is active.
    base::Result<std::vector<std::string>> leftovers() const;

private:
    explicit SnapshotStore(std::string root) : m_root(std::move(root)) {}
    std::string m_root;
};

}  // namespace locald::layers
