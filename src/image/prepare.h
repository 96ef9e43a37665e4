// image/prepare.h — an image reference turned into a container's root
// filesystem: pull when missing → snapshots → the writable layer.
//
// Contract: `prepare_image_rootfs` resolves `reference` in the local store
// (pulling it when it is not there, unless `pull_if_missing` is false; the
// registry config's `offline = true` is honoured by the pull), prepares one
// snapshot per layer (shared by every container of the image), and builds
// the container's writable layer in `container_dir`: an overlay description
// (`upper/`, `work/`, mounted on `merged/` by the launcher inside its user
// namespace) when overlay works in a user namespace, else a flattened copy
// in `rootfs/`. It returns the image's run defaults (Entrypoint, Cmd, Env,
// WorkingDir, User) and the `ns::Rootfs` to put in a ContainerSpec.
//
// The writable layer holds files owned by subordinate ids, so it is removed
// through the user namespace (`remove_container_dir`). This enters user
// namespaces and forks: call it from a single-threaded process (the CLI, or
// `locald __prepare-image` for the daemon), never from the daemon itself.
//
// Used by `locald container run`, the daemon's `image =` services (through
// `__prepare-image`) and, later, the CNB builder. Depends on base, oci,
// layers, ns.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "image/result.h"
#include "layers/unpack.h"
#include "ns/spec.h"
#include "oci/progress.h"

namespace locald::image {

struct PrepareOptions {
    std::string reference;
    // Pull when the ref is not in the store (`docker run` does); false: a
    // missing image is NotFound.
    bool pull_if_missing = true;
    // Where the writable layer goes: created (0700) when missing, must be
    // empty otherwise. "" = a fresh `<data>/containers/run-XXXXXX`.
    std::string container_dir;
    // Pull progress (may be null). Steps: "resolving", "pulling",
    // "unpacking", "rootfs" with a human message.
    oci::ProgressSink* progress = nullptr;
    std::function<void(std::string_view step, std::string_view message)> on_step;
};

struct PreparedRootfs {
    std::string reference;
    std::string image_digest;  // the manifest's digest
    ImageDefaults defaults;
    ns::Rootfs rootfs;
    std::string container_dir;  // the writable layer; removed by the destructor unless released
    layers::OwnershipPlan ownership;
    std::vector<std::string> warnings;

    PreparedRootfs() = default;
    PreparedRootfs(const PreparedRootfs&) = delete;
    PreparedRootfs& operator=(const PreparedRootfs&) = delete;
    ~PreparedRootfs();
    // Keep the writable layer (someone else removes it later).
    void release() { m_owned = false; }

private:
    friend base::Result<std::unique_ptr<PreparedRootfs>> prepare_image_rootfs(
        const PrepareOptions& options);
    bool m_owned = true;
};

base::Result<std::unique_ptr<PreparedRootfs>> prepare_image_rootfs(const PrepareOptions& options);

// rm -rf `dir` as the container's root (subordinate-id owned files).
// A missing dir is not an error.
base::Result<void> remove_container_dir(const std::string& dir);

// What `__prepare-image` prints as its result (image/result.h).
PreparedInfo describe(const PreparedRootfs& prepared);

}  // namespace locald::image
