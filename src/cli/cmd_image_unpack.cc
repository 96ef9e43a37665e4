// `locald image unpack REF DIR`: the flattened root filesystem of an image
// (like `umoci raw unpack`), pulling it first when it is not in the store.
#include <cstdio>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/image_common.h"
#include "layers/unpack.h"
#include "oci/image.h"
#include "oci/pull.h"

namespace locald::cli {

namespace {

const char kImageUnpackHelp[] =
    "usage: locald image unpack REF DIR [--platform OS/ARCH[/VARIANT]] [--offline]\n"
    "                                   [--single-id] [--json]\n"
    "\n"
    "Writes the root filesystem of REF (all layers applied, whiteouts resolved) to\n"
    "the new or empty directory DIR. The image is pulled first when it is not in the\n"
    "local store (unless --offline). DIR appears only when every layer applied and\n"
    "matched the DiffID of the image config.\n"
    "\n"
    "Owners: as root, the image's owners. As a user with a subordinate id range in\n"
    "/etc/subuid and /etc/subgid, the files get the image's owners inside the\n"
    "container's user namespace (uid 0 = you, 1…N = your range), so e.g. uid 999\n"
    "appears on the host as range start + 998. Without a range (or with\n"
    "--single-id) every file belongs to you and the image's owners are recorded in\n"
    "the `user.rootlesscontainers` xattr (umoci's format). Device nodes are only\n"
    "created as root.\n"
    "\n"
    "  --platform P  pick P from a multi-platform image (default: this machine)\n"
    "  --offline     never touch the network: the image must be in the store\n"
    "  --single-id   never use a user namespace (owners go to the xattr)\n"
    "  --json        print the result as JSON\n";

const OptionSpec kOptions[] = {
    {"platform", 0, true}, {"offline"}, {"single-id"}, {"json"}, {"help", 'h'},
};

}  // namespace

int run_image_unpack(std::span<const std::string> args) {
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("image", parsed.error());
    }
    if (parsed->has("help")) {
        std::fputs(kImageUnpackHelp, stdout);
        return kExitOk;
    }
    if (parsed->positional().size() != 2) {
        return report_usage("image", base::invalid_argument("image unpack: expected REF and DIR"));
    }
    const std::string& ref_text = parsed->positional()[0];
    const std::string& target = parsed->positional()[1];
    auto ref = oci::Reference::parse(ref_text);
    if (!ref) {
        return report_usage("image", ref.error());
    }
    std::optional<oci::Platform> platform;
    if (auto value = parsed->value("platform")) {
        auto p = oci::parse_platform(*value);
        if (!p) {
            return report_usage("image", p.error());
        }
        platform = p.release_value();
    }
    auto store = open_image_store();
    if (!store) {
        return report_error(store.error());
    }
    layers::UnpackOptions options;
    options.rootless =
        parsed->has("single-id") ? layers::RootlessMode::SingleId : layers::RootlessMode::Auto;
    auto image = oci::resolve_image(*store, *ref, platform);
    base::Result<layers::UnpackReport> report = base::internal_error("not unpacked");
    if (!image && image.error().kind() == base::ErrorKind::NotFound && !parsed->has("offline")) {
        // Pull and unpack at once: each layer is applied as soon as it is in
        // the store, while the later ones still download.
        oci::LineProgress progress(stderr);
        report = layers::pull_and_unpack_image(
            *store, target, options, [&](const layers::BlobCommitted& committed) {
                oci::PullOptions pull;
                pull.reference = ref_text;
                pull.platform = platform;
                pull.on_blob_committed = committed;
                auto pulled = oci::pull(*store, pull, parsed->has("json") ? nullptr : &progress);
                return pulled ? base::ok() : base::Result<void>(pulled.release_error());
            });
        if (!report) {
            return report_error(report.error());
        }
        image = oci::resolve_image(*store, *ref, platform);
        if (!image) {
            return report_error(image.error());
        }
    } else {
        if (!image) {
            return report_error(image.error());
        }
        report = layers::unpack_image(*store, *image, target, options);
        if (!report) {
            return report_error(report.error());
        }
    }
    for (const auto& warning : report->warnings) {
        std::fprintf(stderr, "locald: warning: %s\n", warning.c_str());
    }
    if (parsed->has("json")) {
        base::Json out = base::Json::object();
        out.set("reference", ref->str());
        out.set("manifest", image->manifest_descriptor.digest.str());
        out.set("directory", target);
        out.set("layers", static_cast<int64_t>(report->layers));
        out.set("uncompressed_bytes", static_cast<int64_t>(report->uncompressed_bytes));
        out.set("user_namespace", report->user_namespace);
        std::printf("%s\n", out.dump().c_str());
    } else {
        std::printf("unpacked %s (%zu layers, %s) to %s\n", ref->str().c_str(), report->layers,
                    human_size(static_cast<int64_t>(report->uncompressed_bytes)).c_str(),
                    target.c_str());
    }
    return kExitOk;
}

}  // namespace locald::cli
