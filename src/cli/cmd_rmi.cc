// `locald rmi REF…`: removes images from the local store.
#include <cstdio>
#include <set>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/image_common.h"
#include "layers/unpack.h"

namespace locald::cli {

const char kRmiHelp[] =
    "usage: locald rmi REF… [-q]\n"
    "\n"
    "Removes each image's name from the local store, then deletes the blobs and\n"
    "the unpacked layer snapshots that only those images used (what another image\n"
    "shares, or a container still uses, stays). Naming an image that is not in\n"
    "the store is an error; the others are still removed.\n"
    "\n"
    "  -q, --quiet   print nothing (not the untagged names and deleted blobs)\n";

int run_rmi(std::span<const std::string> args) {
    static const OptionSpec kOptions[] = {{"quiet", 'q'}};
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("rmi", parsed.error());
    }
    if (parsed->positional().empty()) {
        return report_usage("rmi", base::invalid_argument("expected at least one image reference"));
    }
    std::vector<oci::Reference> refs;
    for (const auto& text : parsed->positional()) {
        auto ref = oci::Reference::parse(text);
        if (!ref) {
            return report_usage("rmi", ref.error());
        }
        refs.push_back(ref.release_value());
    }
    auto store = open_image_store();
    if (!store) {
        return report_error(store.error());
    }
    std::optional<base::Error> first_error;
    std::vector<oci::Descriptor> removed_roots;
    // The snapshots of the removed images (their configs may be deleted
    // with their blobs below, so read before).
    std::set<std::string> removed_chains;
    for (const auto& ref : refs) {
        auto record = store->get_ref(ref.str());
        if (!record) {
            return report_error(record.error());
        }
        if (!*record) {
            auto error = base::not_found("not found: {} in the local store", ref.str());
            std::fprintf(stderr, "locald: error: %s\n", error.message().c_str());
            if (!first_error) {
                first_error = std::move(error);
            }
            continue;
        }
        if (auto image = oci::resolve_image(*store, ref)) {
            for (const auto& chain : layers::image_chain_ids(*image)) {
                removed_chains.insert(chain);
            }
        }
        auto removed = store->remove_ref(ref.str());
        if (!removed) {
            return report_error(removed.error());
        }
        removed_roots.push_back((*record)->target);
        if (!parsed->has("quiet")) {
            std::printf("Untagged: %s\n", ref.str().c_str());
        }
    }
    // Their snapshots that no remaining image and no container needs go,
    // through the user namespace when rootless (subordinate-id files).
    if (!removed_chains.empty()) {
        auto snapshots = [&]() -> base::Result<layers::SnapshotPruneResult> {
            auto plan = TRY(layers::plan_ownership(layers::RootlessMode::Auto));
            auto snapshot_store = TRY(layers::SnapshotStore::open(store->data_dir()));
            return layers::prune_snapshots(*store, snapshot_store, plan, &removed_chains);
        }();
        if (!snapshots) {
            return report_error(snapshots.error().context("removing layer snapshots"));
        }
        if (!parsed->has("quiet")) {
            for (const auto& chain : snapshots->removed) {
                std::printf("Deleted snapshot: %s\n", chain.c_str());
            }
        }
    }
    // Delete what only the removed images used; everything still reachable
    // from a remaining ref stays.
    if (!removed_roots.empty()) {
        // A running pull may be about to reference these blobs: leave them
        // to a later `locald prune` rather than wait or race.
        auto lease = store->hold_delete_lease();
        if (!lease) {
            std::fprintf(stderr, "locald: note: %s; unused blobs are left for `locald prune`\n",
                         lease.error().message().c_str());
            return first_error ? exit_code_for(first_error->kind()) : kExitOk;
        }
        auto reachable = store->reachable_blobs();
        if (!reachable) {
            return report_error(reachable.error());
        }
        std::set<oci::Digest> keep(reachable->begin(), reachable->end());
        int64_t freed = 0;
        int count = 0;
        for (const auto& root : removed_roots) {
            auto closure = oci::image_closure(*store, root, false);
            if (!closure) {
                continue;
            }
            for (const auto& descriptor : *closure) {
                if (keep.contains(descriptor.digest) || !store->has(descriptor.digest)) {
                    continue;
                }
                if (store->delete_blob(descriptor.digest)) {
                    freed += descriptor.size;
                    ++count;
                    if (!parsed->has("quiet")) {
                        std::printf("Deleted: %s\n", descriptor.digest.str().c_str());
                    }
                }
            }
        }
        if (!parsed->has("quiet") && count > 0) {
            std::printf("Freed %s in %d blobs\n", human_size(freed).c_str(), count);
        }
    }
    if (first_error) {
        return exit_code_for(first_error->kind());
    }
    return kExitOk;
}

}  // namespace locald::cli
