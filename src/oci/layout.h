// oci/layout.h — OCI image layout export and import (`image save`/`load`).
//
// Contract: export writes a self-contained OCI layout (directory, or a tar
// when the path ends in `.tar`) holding the full closure of each ref, with
// index.json annotations `io.containerd.image.name` (full ref) and
// `org.opencontainers.image.ref.name` (the tag) like `ctr export`. Import
// accepts a directory or a tar, refuses unsafe tar member names (absolute,
// `..`, links), verifies every blob's digest and size before it enters the
// store, and names refs from io.containerd.image.name, else from a
// ref.name that is a full reference. Blob bytes are copied verbatim.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "oci/reference.h"
#include "oci/store.h"

namespace locald::oci {

base::Result<void> export_layout(const ContentStore& store, const std::vector<Reference>& refs,
                                 const std::string& path);

struct ImportedImage {
    std::string name;  // "" when the entry had no usable name (kept by digest only)
    Descriptor target;
};

base::Result<std::vector<ImportedImage>> import_layout(ContentStore& store,
                                                       const std::string& path);

}  // namespace locald::oci
