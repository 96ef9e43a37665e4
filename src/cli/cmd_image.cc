// `locald image inspect|save|load|unpack …`: one dispatcher; `unpack` is the
// layers module's (cmd_image_unpack.cc) and joins the table with one line.
#include <cstdio>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/image_common.h"
#include "oci/layout.h"
#include "oci/media_types.h"

namespace locald::cli {

const char kImageHelp[] =
    "usage: locald image inspect REF [--platform OS/ARCH[/VARIANT]] [--json]\n"
    "       locald image save REF… -o PATH\n"
    "       locald image load PATH [-q]\n"
    "       locald image unpack …   (see `locald image unpack --help`)\n"
    "\n"
    "inspect  show an image of the local store: manifest, config, layers, sizes and\n"
    "         digests (for a multi-platform image, the one for this machine or\n"
    "         --platform). Never touches the network.\n"
    "save     write the images (all their stored platforms) as an OCI image layout:\n"
    "         a new directory, or a tar when PATH ends in .tar.\n"
    "load     import an OCI image layout (directory or tar) into the store; every\n"
    "         blob's digest is verified, unsafe tar member names are refused.\n"
    "         -q prints only the loaded names, one per line.\n";

namespace {

base::Json string_list(const std::vector<std::string>& values) {
    base::Json out = base::Json::array();
    for (const auto& value : values) {
        out.push_back(value);
    }
    return out;
}

std::string join(const std::vector<std::string>& values, std::string_view separator) {
    std::string out;
    for (const auto& value : values) {
        out += (out.empty() ? "" : std::string(separator)) + value;
    }
    return out;
}

std::string quoted_list(const std::optional<std::vector<std::string>>& values) {
    if (!values) {
        return "-";
    }
    base::Json json = string_list(*values);
    return json.dump();
}

int run_inspect(std::span<const std::string> args) {
    static const OptionSpec kOptions[] = {{"json"}, {"platform", 0, true}};
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("image", parsed.error());
    }
    if (parsed->positional().size() != 1) {
        return report_usage("image",
                            base::invalid_argument("`image inspect` takes one image reference"));
    }
    auto ref = oci::Reference::parse(parsed->positional()[0]);
    if (!ref) {
        return report_usage("image", ref.error());
    }
    std::optional<oci::Platform> platform;
    if (auto value = parsed->value("platform")) {
        auto parsed_platform = oci::parse_platform(*value);
        if (!parsed_platform) {
            return report_usage("image", parsed_platform.error());
        }
        platform = parsed_platform.release_value();
    }
    auto store = open_image_store();
    if (!store) {
        return report_error(store.error());
    }
    auto image = oci::resolve_image(*store, *ref, platform);
    if (!image) {
        return report_error(image.error());
    }
    std::optional<oci::RefRecord> record;
    if (!ref->has_digest()) {
        auto found = store->get_ref(ref->str());
        if (found) {
            record = found.release_value();
        }
    }
    const auto& config = image->config;
    int64_t total = image->manifest_descriptor.size + image->manifest.config.size;
    for (const auto& layer : image->manifest.layers) {
        total += layer.size;
    }
    if (parsed->has("json")) {
        base::Json out = base::Json::object();
        out.set("name", ref->str());
        out.set("digest", image->root.digest.str());
        out.set("media_type", image->root.media_type);
        out.set("manifest_digest", image->manifest_descriptor.digest.str());
        out.set("platform", config.platform.str());
        out.set("size", total);
        if (record) {
            out.set("source", record->source);
            out.set("pulled_at", record->pulled_at);
        }
        base::Json layers = base::Json::array();
        for (size_t i = 0; i < image->manifest.layers.size(); ++i) {
            const auto& layer = image->manifest.layers[i];
            base::Json item = base::Json::object();
            item.set("digest", layer.digest.str());
            item.set("media_type", layer.media_type);
            item.set("size", layer.size);
            item.set("diff_id", config.diff_ids[i].str());
            item.set("compression", oci::media_types::to_string(
                                        oci::media_types::layer_compression(layer.media_type)));
            layers.push_back(std::move(item));
        }
        out.set("layers", std::move(layers));
        if (image->index) {
            auto index_json = base::Json::parse(image->index->raw);
            out.set("index", index_json ? index_json.release_value() : base::Json());
        }
        auto manifest_json = base::Json::parse(image->manifest.raw);
        out.set("manifest", manifest_json ? manifest_json.release_value() : base::Json());
        auto config_json = base::Json::parse(config.raw);
        out.set("config", config_json ? config_json.release_value() : base::Json());
        std::printf("%s\n", out.dump(true).c_str());
        return kExitOk;
    }
    std::printf("Name:          %s\n", ref->str().c_str());
    std::printf("Digest:        %s\n", image->root.digest.str().c_str());
    std::printf("Media type:    %s\n", image->root.media_type.c_str());
    if (image->index) {
        std::printf("Manifest:      %s\n", image->manifest_descriptor.digest.str().c_str());
        std::string platforms;
        for (const auto& entry : image->index->manifests) {
            if (!entry.is_attestation() && entry.platform) {
                platforms +=
                    (platforms.empty() ? "" : ", ") + oci::normalize(*entry.platform).str();
            }
        }
        std::printf("Platforms:     %s\n", platforms.c_str());
    }
    std::printf("Platform:      %s\n", config.platform.str().c_str());
    std::printf("Created:       %s\n", config.created.empty() ? "-" : config.created.c_str());
    std::printf("Config:        %s\n", image->manifest.config.digest.str().c_str());
    std::printf("Size:          %s (%lld bytes)\n", human_size(total).c_str(),
                static_cast<long long>(total));
    if (record) {
        std::printf("Source:        %s\n", record->source.empty() ? "-" : record->source.c_str());
        std::printf("Pulled:        %s\n",
                    record->pulled_at.empty() ? "-" : record->pulled_at.c_str());
    }
    std::printf("Entrypoint:    %s\n", quoted_list(config.config.entrypoint).c_str());
    std::printf("Cmd:           %s\n", quoted_list(config.config.cmd).c_str());
    std::printf("WorkingDir:    %s\n",
                config.config.working_dir.empty() ? "-" : config.config.working_dir.c_str());
    std::printf("User:          %s\n",
                config.config.user.empty() ? "-" : config.config.user.c_str());
    std::printf("ExposedPorts:  %s\n", config.config.exposed_ports.empty()
                                           ? "-"
                                           : join(config.config.exposed_ports, " ").c_str());
    std::printf("Env:\n");
    for (const auto& env : config.config.env) {
        std::printf("  %s\n", env.c_str());
    }
    if (!config.config.labels.empty()) {
        std::printf("Labels:\n");
        for (const auto& [key, value] : config.config.labels) {
            std::printf("  %s=%s\n", key.c_str(), value.c_str());
        }
    }
    std::printf("Layers:\n");
    for (size_t i = 0; i < image->manifest.layers.size(); ++i) {
        const auto& layer = image->manifest.layers[i];
        std::printf("  %s  %10s  %-5s  diff %s\n", layer.digest.str().c_str(),
                    human_size(layer.size).c_str(),
                    std::string(oci::media_types::to_string(
                                    oci::media_types::layer_compression(layer.media_type)))
                        .c_str(),
                    config.diff_ids[i].short_str().c_str());
    }
    return kExitOk;
}

int run_save(std::span<const std::string> args) {
    static const OptionSpec kOptions[] = {{"output", 'o', true}};
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("image", parsed.error());
    }
    auto output = parsed->value("output");
    if (!output || output->empty()) {
        return report_usage("image", base::invalid_argument("`image save` needs -o PATH"));
    }
    if (parsed->positional().empty()) {
        return report_usage("image", base::invalid_argument("`image save` needs at least one REF"));
    }
    std::vector<oci::Reference> refs;
    for (const auto& text : parsed->positional()) {
        auto ref = oci::Reference::parse(text);
        if (!ref) {
            return report_usage("image", ref.error());
        }
        refs.push_back(ref.release_value());
    }
    auto store = open_image_store();
    if (!store) {
        return report_error(store.error());
    }
    auto saved = oci::export_layout(*store, refs, *output);
    if (!saved) {
        return report_error(saved.error());
    }
    for (const auto& ref : refs) {
        std::printf("Saved %s\n", ref.str().c_str());
    }
    std::printf("to %s\n", output->c_str());
    return kExitOk;
}

int run_load(std::span<const std::string> args) {
    static const OptionSpec kOptions[] = {{"quiet", 'q'}};
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("image", parsed.error());
    }
    if (parsed->positional().size() != 1) {
        return report_usage("image", base::invalid_argument("`image load` takes one PATH"));
    }
    auto store = open_image_store();
    if (!store) {
        return report_error(store.error());
    }
    auto loaded = oci::import_layout(*store, parsed->positional()[0]);
    if (!loaded) {
        return report_error(loaded.error());
    }
    int named = 0;
    for (const auto& image : *loaded) {
        if (image.name.empty()) {
            std::fprintf(stderr,
                         "locald: warning: skipped %s: it has no image name (an OCI layout "
                         "names it with the annotation io.containerd.image.name or a full "
                         "org.opencontainers.image.ref.name; a docker save archive with "
                         "RepoTags or `repositories`)\n",
                         image.target.digest.str().c_str());
            continue;
        }
        ++named;
        if (parsed->has("quiet")) {
            std::printf("%s\n", image.name.c_str());  // for scripts, as `pull -q`
        } else {
            std::printf("Loaded %s (%s)\n", image.name.c_str(), image.target.digest.str().c_str());
        }
    }
    if (named == 0) {
        return report_error(
            base::invalid_argument("`{}` holds no named image to load", parsed->positional()[0]));
    }
    return kExitOk;
}

struct ImageSubcommand {
    std::string_view name;
    int (*run)(std::span<const std::string> args);
};

// One line per subcommand; the layers module adds {"unpack", run_image_unpack}.
const ImageSubcommand kImageSubcommands[] = {
    {"inspect", run_inspect},
    {"save", run_save},
    {"load", run_load},
    {"unpack", run_image_unpack},
};

}  // namespace

int run_image(std::span<const std::string> args) {
    if (args.empty()) {
        return report_usage("image", base::invalid_argument(
                                         "expected a subcommand: inspect, save, load or unpack"));
    }
    for (const auto& subcommand : kImageSubcommands) {
        if (subcommand.name == args[0]) {
            return subcommand.run(args.subspan(1));
        }
    }
    return report_usage("image", base::invalid_argument("unknown subcommand `image {}`", args[0]));
}

}  // namespace locald::cli
