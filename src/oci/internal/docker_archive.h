// oci/internal/docker_archive.h — `docker save` archives (legacy:
// manifest.json + repositories + <id>/layer.tar + <id>.json; Docker ≥ 25:
// manifest.json naming blobs/sha256/<hex>) turned into stored images.
//
// Contract: every name in manifest.json is attacker-controlled and is only
// ever looked up through `MemberOpener` (never joined to a host path here).
// Each image becomes a Docker schema 2 manifest written by locald whose
// config is the archive's config blob verbatim and whose layers are the
// archive's uncompressed layer tars verbatim (application/vnd.docker.image.
// rootfs.diff.tar); each layer must hash to the config's rootfs.diff_ids
// entry at the same position, so digests and diff_ids are correct by
// construction and a tampered layer is DataLoss naming the member. Names
// come from RepoTags (normalised like Docker), else from `repositories`.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "oci/layout.h"
#include "oci/store.h"

namespace locald::oci::internal {

// Opens an archive member by normalised name for reading; NotFound when the
// archive has no such regular file.
using MemberOpener = std::function<base::Result<base::UniqueFd>(const std::string& name)>;

// "./a//b/./c/" → "a/b/c". Absolute names and `..` components are
// InvalidArgument naming `name` and `where`. An empty result means the
// archive root itself.
base::Result<std::string> normalize_member_name(std::string_view name, std::string_view where);

// Imports every image listed in the archive's manifest.json. `source` names
// the archive in messages and in the refs' `load:` source.
base::Result<std::vector<ImportedImage>> import_docker_archive(ContentStore& store,
                                                               const MemberOpener& open_member,
                                                               const std::string& source);

}  // namespace locald::oci::internal
