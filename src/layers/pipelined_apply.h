// layers/pipelined_apply.h — applying layers while the pull still downloads.
//
// Contract:
// - start() forks a helper process *now*, while the caller is still
//   single-threaded (a rootless apply forks again into the container user
//   namespace, which a multi-threaded process must not do; the pull's
//   download threads start after this). The helper applies, as the plan's
//   container root, each layer as soon as the caller reports its blob
//   committed and the image config (the DiffIDs) is in the store:
//   `Snapshots` — every layer into its snapshot (SnapshotStore::ensure, in
//   parallel, committed bottom-up, DiffIDs verified); `Flatten` — the layers
//   in order onto `flatten_root` (what `locald image unpack` does).
// - on_blob() is the pull's `on_blob_committed` callback: thread-safe,
//   never blocks on the helper (a few bytes per blob on a socket) and never
//   raises SIGPIPE when the helper has already failed.
// - finish() tells the helper no more blobs come and waits for it: Ok when
//   every layer applied. A layer that never arrived (pull failed) is
//   Unavailable; any apply error comes back with its kind and message.
//   Snapshots appear whole or not at all, as with ensure(); in Flatten mode
//   the caller owns `flatten_root` (and removes it on failure, through the
//   plan's namespace).
// - Dropping it without finish() kills and reaps the helper. The helper
//   (and its user-namespace child) has PR_SET_PDEATHSIG: it dies with the
//   thread that called start() — call it from one that outlives the
//   pipeline (the main thread) — and the child dies with the helper.
// Depends on base, oci value types and the content store, layers.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>

#include "base/error.h"
#include "base/unique_fd.h"
#include "layers/unpack.h"
#include "oci/manifest.h"
#include "oci/store.h"

namespace locald::layers {

class PipelinedApply {
public:
    enum class Mode { Snapshots, Flatten };

    struct Options {
        Mode mode = Mode::Snapshots;
        std::string flatten_root;  // Mode::Flatten: an existing, empty directory
        ApplyLimits limits;
    };

    static base::Result<PipelinedApply> start(const oci::ContentStore& store,
                                              const OwnershipPlan& plan, const Options& options);

    PipelinedApply(PipelinedApply&&) noexcept;
    PipelinedApply& operator=(PipelinedApply&&) = delete;
    PipelinedApply(const PipelinedApply&) = delete;
    ~PipelinedApply();

    void on_blob(const oci::ImageManifest& manifest, const oci::Descriptor& blob);
    base::Result<void> finish();

    // Layers applied (for the caller's report); valid after a successful finish().
    size_t layers() const { return m_layers; }
    uint64_t uncompressed_bytes() const { return m_uncompressed_bytes; }  // Flatten mode
    std::vector<std::string> warnings() const { return m_warnings; }

private:
    PipelinedApply() = default;
    void send(const std::string& line);

    const oci::ContentStore* m_store = nullptr;
    pid_t m_pid = -1;
    base::UniqueFd m_commands;  // write end: "L blob diff", "E", "C blob", "X why"
    base::UniqueFd m_result;    // read end: the helper's report
    std::unique_ptr<std::mutex> m_mutex;
    bool m_config_sent = false;
    size_t m_layers = 0;
    uint64_t m_uncompressed_bytes = 0;
    std::vector<std::string> m_warnings;
};

}  // namespace locald::layers
