// cli/image_common.h — helpers shared by the local image commands
// (images, image, rmi, tag, prune): opening the store, sizes, JSON views.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/error.h"
#include "base/json.h"
#include "oci/image.h"
#include "oci/progress.h"
#include "oci/store.h"

namespace locald::cli {

// The store under locald's data dir (created on first use, 0700).
base::Result<oci::ContentStore> open_image_store();

// The progress display `pull` and `push` share: JSON lines with `json`,
// nothing with `quiet`, bars on a terminal, one line per layer otherwise.
std::unique_ptr<oci::ProgressSink> make_progress_sink(bool json, bool quiet);

// "12.3 MB" (decimal units, like docker).
std::string human_size(int64_t bytes);

// Sum of the sizes of every blob of `root` that is present in the store.
int64_t stored_size(const oci::ContentStore& store, const oci::Descriptor& root);

base::Json descriptor_json(const oci::Descriptor& descriptor);

}  // namespace locald::cli
