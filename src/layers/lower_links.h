// layers/lower_links.h — hardlinks whose target lives in a lower layer, for
// layers applied alone into their own snapshot (Overlay mode).
//
// Contract:
// - A layer applied into an empty directory cannot `linkat` to a file of a
//   lower layer: the applier records such links (ApplyStats::lower_links)
//   and the snapshot store resolves them here, once every lower snapshot
//   exists, before the snapshot is committed.
// - The target is looked up in the merged view of the layer itself and its
//   lowers (top-most first), with overlay semantics: 0/0 whiteout devices
//   hide lower entries, opaque directories hide lower content, a non-
//   directory hides a lower directory. Every lookup is one component with
//   O_NOFOLLOW from a directory fd of one layer; symlinks in the target's
//   parents are followed inside the merged root (`..` and absolute targets
//   never leave it, 40 at most), the target itself never (a link to a
//   symlink links the symlink, as linkat without AT_SYMLINK_FOLLOW does).
// - A target in the layer itself is linked; a target in a lower layer is
//   copied up (content, owner, mode, xattrs but overlay markers, times) —
//   the closest an overlay of separate layers can get to a shared inode;
//   several links to the same lower file within a layer share one copy.
// - A link whose own path was replaced by a later entry of the layer is
//   skipped (the later entry wins, as in a flattened apply). A missing
//   target or a directory is InvalidArgument naming the link.
// Runs as the container root (inside the user namespace when rootless).
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "layers/layer_applier.h"

namespace locald::layers {

struct LowerLinkStats {
    uint64_t linked = 0;     // target in the layer itself
    uint64_t copied_up = 0;  // target copied from a lower layer
    uint64_t skipped = 0;    // the link's path was replaced later in the layer
    uint64_t skipped_devices = 0;
};

// `layer_root`: the layer's own directory; `lower_roots`: the lower
// snapshots' directories, top-most first.
base::Result<LowerLinkStats> resolve_lower_links(int layer_root,
                                                 const std::vector<int>& lower_roots,
                                                 const std::vector<LowerLink>& links,
                                                 const std::string& layer_digest);

}  // namespace locald::layers
