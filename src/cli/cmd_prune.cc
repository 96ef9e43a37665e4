// `locald prune`: deletes blobs no image uses, abandoned partial downloads,
// and layer snapshots no image or container needs.
#include <cstdio>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/image_common.h"
#include "layers/unpack.h"

namespace locald::cli {

const char kPruneHelp[] =
    "usage: locald prune [--json]\n"
    "\n"
    "Deletes every blob of the local store that no image name reaches (index →\n"
    "manifests → config and layers), partial downloads no process is writing, and\n"
    "the unpacked layer snapshots that no named image and no container needs.\n"
    "Images with a name are never touched; use `locald rmi` to drop a name first.\n"
    "While a pull or load runs, blobs are left alone (it exits with an error).\n"
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
    // Snapshots first: they are decided by the refs and the snapshot leases
    // (containers, applies in progress), not by the blob lease a pull holds.
    // Rootless snapshots hold subordinate-id files: removed in the namespace.
    auto plan = layers::plan_ownership(layers::RootlessMode::Auto);
    if (!plan) {
        return report_error(plan.error());
    }
    auto snapshot_store = layers::SnapshotStore::open(store->data_dir());
    if (!snapshot_store) {
        return report_error(snapshot_store.error());
    }
    auto snapshots = layers::prune_snapshots(*store, *snapshot_store, *plan);
    if (!snapshots) {
        return report_error(snapshots.error().context("pruning layer snapshots"));
    }
    // Partial downloads held by a running pull are locked and skipped.
    auto result = store->gc(std::chrono::seconds(0));
    if (!result) {
        for (const auto& chain : snapshots->removed) {
            std::printf("Deleted snapshot: %s\n", chain.c_str());
        }
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
        base::Json removed_snapshots = base::Json::array();
        for (const auto& chain : snapshots->removed) {
            removed_snapshots.push_back(chain);
        }
        out.set("removed_snapshots", std::move(removed_snapshots));
        std::printf("%s\n", out.dump(true).c_str());
        return kExitOk;
    }
    for (const auto& digest : result->removed_blobs) {
        std::printf("Deleted: %s\n", digest.str().c_str());
    }
    for (const auto& chain : snapshots->removed) {
        std::printf("Deleted snapshot: %s\n", chain.c_str());
    }
    std::printf("Removed %zu blobs (%s), %zu partial downloads and %zu snapshots\n",
                result->removed_blobs.size(), human_size(result->removed_bytes).c_str(),
                result->removed_ingests.size(), snapshots->removed.size());
    return kExitOk;
}

}  // namespace locald::cli
