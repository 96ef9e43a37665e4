// `locald prune`: deletes blobs no image uses and abandoned partial downloads.
#include <cstdio>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/image_common.h"

namespace locald::cli {

const char kPruneHelp[] =
    "usage: locald prune [--json]\n"
    "\n"
    "Deletes every blob of the local store that no image name reaches (index →\n"
    "manifests → config and layers), and partial downloads no process is writing.\n"
    "Images with a name are never touched; use `locald rmi` to drop a name first.\n"
    "\n"
    "  --json   print what was removed as one JSON object\n";

int run_prune(std::span<const std::string> args) {
    static const OptionSpec kOptions[] = {{"json"}};
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("prune", parsed.error());
    }
    if (!parsed->positional().empty()) {
        return report_usage("prune", base::invalid_argument("`prune` takes no arguments"));
    }
    auto store = open_image_store();
    if (!store) {
        return report_error(store.error());
    }
    // Partial downloads held by a running pull are locked and skipped.
    auto result = store->gc(std::chrono::seconds(0));
    if (!result) {
        return report_error(result.error());
    }
    if (parsed->has("json")) {
        base::Json out = base::Json::object();
        base::Json blobs = base::Json::array();
        for (const auto& digest : result->removed_blobs) {
            blobs.push_back(digest.str());
        }
        base::Json ingests = base::Json::array();
        for (const auto& key : result->removed_ingests) {
            ingests.push_back(key);
        }
        out.set("removed_blobs", std::move(blobs));
        out.set("removed_bytes", result->removed_bytes);
        out.set("removed_ingests", std::move(ingests));
        std::printf("%s\n", out.dump(true).c_str());
        return kExitOk;
    }
    for (const auto& digest : result->removed_blobs) {
        std::printf("Deleted: %s\n", digest.str().c_str());
    }
    std::printf("Removed %zu blobs (%s) and %zu partial downloads\n", result->removed_blobs.size(),
                human_size(result->removed_bytes).c_str(), result->removed_ingests.size());
    return kExitOk;
}

}  // namespace locald::cli
