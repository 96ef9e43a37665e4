// `locald tag SRC DST`: another name for a stored image.
#include <cstdio>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/image_common.h"

namespace locald::cli {

const char kTagHelp[] =
    "usage: locald tag SRC DST\n"
    "\n"
    "Gives the stored image SRC (a tag or digest reference) the name DST, e.g.\n"
    "`locald tag alpine:3.19 localhost:5000/base:1` before `locald push`. DST\n"
    "must be a tag reference; an existing DST is moved. Only the local store is\n"
    "read and written.\n";

int run_tag(std::span<const std::string> args) {
    auto parsed = parse_args(args, {});
    if (!parsed) {
        return report_usage("tag", parsed.error());
    }
    if (parsed->positional().size() != 2) {
        return report_usage("tag", base::invalid_argument("expected SRC and DST"));
    }
    auto source = oci::Reference::parse(parsed->positional()[0]);
    if (!source) {
        return report_usage("tag", source.error());
    }
    auto target = oci::Reference::parse(parsed->positional()[1]);
    if (!target) {
        return report_usage("tag", target.error());
    }
    if (target->has_digest()) {
        return report_usage("tag", base::invalid_argument(
                                       "DST `{}` has a digest; a new name must be a tag reference",
                                       parsed->positional()[1]));
    }
    auto store = open_image_store();
    if (!store) {
        return report_error(store.error());
    }
    auto descriptor = store->resolve(*source);
    if (!descriptor) {
        return report_error(descriptor.error());
    }
    oci::RefRecord record;
    record.name = target->str();
    record.target = *descriptor;
    // Keep the provenance of the source name: where and when it was pulled.
    record.source = "tag:" + source->str();
    if (!source->has_digest()) {
        if (auto existing = store->get_ref(source->str()); existing && *existing) {
            if (!(*existing)->source.empty()) {
                record.source = (*existing)->source;
            }
            record.pulled_at = (*existing)->pulled_at;
        }
    }
    auto set = store->set_ref(std::move(record));
    if (!set) {
        return report_error(set.error());
    }
    std::printf("Tagged %s as %s\n", source->str().c_str(), target->str().c_str());
    return kExitOk;
}

}  // namespace locald::cli
