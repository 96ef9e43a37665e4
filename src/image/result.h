// image/result.h — a prepared image as plain data, and its JSON form.
//
// Contract: what `locald __prepare-image` prints as its final `result` line
// and the daemon reads back: the image's run defaults, the rootfs to put in
// an ns::ContainerSpec and the writable layer's dir. Header and code depend
// on base and ns/spec.h only, so the daemon (which must not link the
// registry client or the unpacker) can use it without image/prepare.h.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "base/json.h"
#include "ns/spec.h"

namespace locald::image {

// What an image contributes to a run (its config).
struct ImageDefaults {
    std::vector<std::string> entrypoint;
    std::vector<std::string> cmd;
    std::vector<std::string> env;  // "K=V"
    std::string working_dir;
    std::string user;
};

struct PreparedInfo {
    std::string reference;
    std::string image_digest;  // the manifest's digest
    ImageDefaults defaults;
    ns::Rootfs rootfs;
    std::string container_dir;  // the writable layer
};

// {"reference","digest","defaults":{entrypoint,cmd,env,working_dir,user},
//  "rootfs":{"path","mounts":[{type,source,options}]},"container_dir"}
base::Json to_json(const PreparedInfo& info);
// Strict about types; `rootfs.path` must be absolute.
base::Result<PreparedInfo> prepared_from_json(const base::Json& json);

}  // namespace locald::image
