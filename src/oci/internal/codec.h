// oci/internal/codec.h — descriptor/platform <-> base::Json, shared by the
// manifest parser, the store's index.json and layout export.
#pragma once

#include "base/error.h"
#include "base/json.h"
#include "oci/descriptor.h"

namespace locald::oci::internal {

// `where` names the document position in errors ("manifest layers[2]").
base::Result<Descriptor> descriptor_from_json(const base::Json& json, std::string_view where);
base::Result<Platform> platform_from_json(const base::Json& json, std::string_view where);
base::Result<Annotations> string_map_from_json(const base::Json& json, std::string_view where);

base::Json descriptor_to_json(const Descriptor& descriptor);
base::Json platform_to_json(const Platform& platform);

}  // namespace locald::oci::internal
