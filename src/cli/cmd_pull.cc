// `locald pull REF [--platform OS/ARCH[/VARIANT]] [--offline] [-q] [--json]`
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/image_common.h"
#include "oci/pull.h"

namespace locald::cli {

const char kPullHelp[] =
    "usage: locald pull REF [--platform OS/ARCH[/VARIANT]] [--offline] [-q] [--json]\n"
    "\n"
    "Fetches an image from its registry into the local store (layers in parallel,\n"
    "verified, resumable). REF is a Docker-style reference: `alpine`,\n"
    "`ghcr.io/org/app:1.2`, `localhost:5000/x@sha256:…`.\n"
    "\n"
    "  --platform P  pick P from a multi-platform image (default: this machine)\n"
    "  --offline     use only the local store; fail naming what is not cached\n"
    "  -q, --quiet   print only the pulled reference\n"
    "  --json        progress as one JSON object per line on stderr\n"
    "\n"
    "Registries, mirrors and insecure hosts come from <config>/config.toml,\n"
    "credentials from `locald login`; see docs/manual/registry.md.\n";

namespace {

const OptionSpec kOptions[] = {
    {"platform", 0, true}, {"offline"}, {"quiet", 'q'}, {"json"}, {"parallel", 0, true},
};

}  // namespace

int run_pull(std::span<const std::string> args) {
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("pull", parsed.error());
    }
    if (parsed->positional().size() != 1) {
        return report_usage("pull", base::invalid_argument("expected one image reference"));
    }
    oci::PullOptions options;
    options.reference = parsed->positional()[0];
    options.offline = parsed->has("offline");
    if (auto platform = parsed->value("platform")) {
        auto value = oci::parse_platform(*platform);
        if (!value) {
            return report_usage("pull", value.error());
        }
        options.platform = value.release_value();
    }
    if (auto parallel = parsed->value("parallel")) {
        int n = std::atoi(parallel->c_str());
        if (n < 1 || n > 64) {
            return report_usage("pull", base::invalid_argument("--parallel must be 1..64"));
        }
        options.parallel = n;
    }
    auto sink = make_progress_sink(parsed->has("json"), parsed->has("quiet"));
    auto store = oci::ContentStore::open_default();
    if (!store) {
        return report_error(store.error());
    }
    auto pulled = oci::pull(store.value(), options, sink.get());
    if (!pulled) {
        return report_error(pulled.error());
    }
    std::printf("%s\n", pulled->ref.str().c_str());
    return kExitOk;
}

}  // namespace locald::cli
