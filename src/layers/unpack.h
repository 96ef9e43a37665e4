// layers/unpack.h — unpacking a stored image: ownership plan, snapshots,
// and the flattened root filesystem (`locald image unpack`).
//
// Contract:
// - Ownership (plan_ownership): as root, real owners. As an unprivileged
//   user with /etc/subuid and /etc/subgid ranges, every write happens in a
//   forked child inside a user namespace with the container mapping
//   (base::container_mapping: 0 → the user, 1…N → the subordinate range),
//   so files owned by uid 100 or 999 in the image are owned by exactly
//   those ids inside the container (host ids from the range). Trees written
//   that way are also removed that way (remove_tree). Without a range: no
//   namespace, the caller owns everything and the image's ids go into
//   `user.rootlesscontainers` (umoci's format), with a warning.
// - unpack_image() writes the flattened root filesystem of a resolved image
//   into a new directory next to `target`, layer after layer (Flatten
//   mode, DiffIDs verified), and renames it to `target` only when every
//   layer applied: a failed unpack leaves no partial `target`.
// - Blobs are read from the content store (oci/store.h), never fetched: the
//   caller pulls first (the CLI does, through oci/pull.h).
// The caller must be single-threaded when a user namespace is used (fork).
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/userns.h"
#include "layers/layer_applier.h"
#include "layers/rootfs.h"
#include "layers/snapshot_store.h"
#include "oci/image.h"
#include "oci/store.h"

namespace locald::layers {

enum class RootlessMode {
    Auto,           // a user namespace when a subordinate range exists, else SingleId
    UserNamespace,  // require the range (FailedPrecondition without one)
    SingleId,       // never a namespace: owners in user.rootlesscontainers
};

struct OwnershipPlan {
    bool privileged = false;      // real root: real owners, devices allowed
    bool user_namespace = false;  // apply inside a namespace with `mapping`
    base::IdMapping mapping;
    OwnershipMode mode = OwnershipMode::Preserve;
    std::string warning;  // what is lost, when something is
};

base::Result<OwnershipPlan> plan_ownership(RootlessMode rootless);

// Runs `fn` as the plan's container root: inline, or in a forked child in
// the user namespace (errors come back with their kind and message) that
// dies with the calling thread (PR_SET_PDEATHSIG, armed once it is root).
base::Result<void> run_as_container_root(const OwnershipPlan& plan,
                                         const std::function<base::Result<void>()>& fn);

// rm -rf `path` as the plan's container root (for trees written under it).
base::Result<void> remove_tree(const OwnershipPlan& plan, const std::string& path);

// How one layer is applied into a flattened tree under `plan`: whiteouts
// delete, owners per the plan, devices only when privileged. The compressed
// digest is not re-hashed: the store verified it on ingest.
ApplyOptions flatten_apply_options(const LayerSource& source, const OwnershipPlan& plan,
                                   const ApplyLimits& limits);

// The layer blobs and DiffIDs of a resolved image, with openers on `store`.
base::Result<std::vector<LayerSource>> layer_sources(const oci::ContentStore& store,
                                                     const oci::ResolvedImage& image);

struct UnpackOptions {
    RootlessMode rootless = RootlessMode::Auto;
    ApplyLimits limits;
};

struct UnpackReport {
    size_t layers = 0;
    uint64_t compressed_bytes = 0;
    uint64_t uncompressed_bytes = 0;
    bool user_namespace = false;
    std::vector<std::string> warnings;
};

// Flattened root filesystem of `image` at `target` (which must not exist, or
// be an empty directory).
base::Result<UnpackReport> unpack_image(const oci::ContentStore& store,
                                        const oci::ResolvedImage& image, const std::string& target,
                                        const UnpackOptions& options = {});

// Runs a pull, handing it the callback to call as each blob is committed
// (oci::PullOptions::on_blob_committed); returns the pull's outcome.
using BlobCommitted = std::function<void(const oci::ImageManifest&, const oci::Descriptor&)>;
using PullWithCallback = std::function<base::Result<void>(const BlobCommitted&)>;

// unpack_image() for an image being pulled: each layer is applied (in order,
// Flatten mode, in the plan's namespace, by a helper process forked before
// `pull` runs — call while single-threaded) as soon as its blob and the
// config are in the store, while later layers still download. Same target
// rules and all-or-nothing result as unpack_image().
base::Result<UnpackReport> pull_and_unpack_image(const oci::ContentStore& store,
                                                 const std::string& target,
                                                 const UnpackOptions& options,
                                                 const PullWithCallback& pull);

// Snapshots for every layer of `image` (parallel, in the plan's namespace);
// returns their fs paths bottom-most first. With `lease`, the snapshots stay
// claimed after the call (keep it while they are in use, or bind it to the
// container's directory) so `prune` / `rmi` leave them alone.
base::Result<std::vector<std::string>> prepare_snapshots(
    const oci::ContentStore& store, const oci::ResolvedImage& image, SnapshotStore& snapshots,
    const OwnershipPlan& plan, std::vector<std::string>* warnings, SnapshotLease* lease = nullptr);

// The chain IDs of a resolved image's layers (bottom-most first).
std::vector<std::string> image_chain_ids(const oci::ResolvedImage& image);

// A container's root filesystem, as the launcher needs it.
struct RootfsPlan {
    enum class Kind { Overlay, Flattened };
    Kind kind = Kind::Overlay;
    OverlayMount overlay;  // Kind::Overlay: mount this (inside the user namespace)
    std::string rootfs;    // Kind::Flattened: this directory is the root
};

// RootfsBuilder: with `overlay` (the launcher's probe said overlayfs works
// in its namespace), creates `<container_dir>/upper` and `/work` and
// describes the mount of `snapshots` (bottom-most first); otherwise copies
// the snapshots into `<container_dir>/rootfs` (reflink when possible) as
// the plan's container root. `container_dir` must exist and be private.
base::Result<RootfsPlan> build_rootfs(const std::vector<std::string>& snapshots,
                                      const std::string& container_dir, bool overlay,
                                      const OwnershipPlan& plan);

struct SnapshotPruneResult {
    std::vector<std::string> removed;  // chain IDs
    size_t leftovers_removed = 0;      // unfinished `.tmp-*` / `.rm-*` directories
    size_t stale_leases = 0;
};

// Removes every snapshot no image of `store` needs (the chain IDs of each
// stored ref, resolved for this machine's platform) and no live lease
// claims (a running or prepared container, an apply in progress), through
// the plan's namespace (rootless snapshots hold subordinate-id files). With
// `only`, considers just those chain IDs (`rmi`: the removed images' own).
// Without, also deletes leftovers of interrupted applies when no holder is
// active. A ref that does not resolve for another reason than a missing
// blob or platform is an error (nothing removed): better keep too much.
base::Result<SnapshotPruneResult> prune_snapshots(const oci::ContentStore& store,
                                                  SnapshotStore& snapshots,
                                                  const OwnershipPlan& plan,
                                                  const std::set<std::string>* only = nullptr);

}  // namespace locald::layers
