// `locald push LOCAL_REF [REMOTE_REF] [-q] [--json]`
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/image_common.h"
#include "oci/push.h"

namespace locald::cli {

const char kPushHelp[] =
    "usage: locald push LOCAL_REF [REMOTE_REF] [-q] [--json]\n"
    "\n"
    "Uploads an image from the local store to a registry (blobs the registry has\n"
    "are skipped, blobs from another repository of the same registry are\n"
    "mounted), then its manifest with the exact bytes and media type. REMOTE_REF\n"
    "defaults to LOCAL_REF. Credentials come from `locald login`.\n"
    "\n"
    "  -q, --quiet   print only the pushed reference and digest\n"
    "  --json        progress as one JSON object per line on stderr\n";

namespace {

const OptionSpec kOptions[] = {
    {"quiet", 'q'},
    {"json"},
};

}  // namespace

int run_push(std::span<const std::string> args) {
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("push", parsed.error());
    }
    const auto& positional = parsed->positional();
    if (positional.empty() || positional.size() > 2) {
        return report_usage("push", base::invalid_argument("expected LOCAL_REF [REMOTE_REF]"));
    }
    oci::PushOptions options;
    options.local_reference = positional[0];
    if (positional.size() == 2) {
        options.remote_reference = positional[1];
    }
    auto sink = make_progress_sink(parsed->has("json"), parsed->has("quiet"));
    auto store = oci::ContentStore::open_default();
    if (!store) {
        return report_error(store.error());
    }
    auto pushed = oci::push(store.value(), options, sink.get());
    if (!pushed) {
        return report_error(pushed.error());
    }
    std::printf("%s@%s\n", pushed->ref.without_digest().str().c_str(),
                pushed->digest.str().c_str());
    return kExitOk;
}

}  // namespace locald::cli
