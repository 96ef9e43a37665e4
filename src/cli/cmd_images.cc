// `locald images [--json]`: the images in the local store.
#include <cstdio>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/image_common.h"
#include "cli/output.h"
#include "oci/reference.h"

namespace locald::cli {

const char kImagesHelp[] =
    "usage: locald images [--json]\n"
    "\n"
    "Lists the images in the local store: repository, tag, digest, the size of\n"
    "their stored blobs, and where and when each was pulled (or loaded/tagged).\n"
    "\n"
    "  --json   one JSON array with every field\n";

namespace {

const OptionSpec kOptions[] = {{"json"}};

}  // namespace

int run_images(std::span<const std::string> args) {
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("images", parsed.error());
    }
    if (!parsed->positional().empty()) {
        return report_usage("images", base::invalid_argument("`images` takes no arguments"));
    }
    auto store = open_image_store();
    if (!store) {
        return report_error(store.error());
    }
    auto refs = store->list_refs();
    if (!refs) {
        return report_error(refs.error());
    }
    base::Json list = base::Json::array();
    std::vector<std::vector<std::string>> rows{
        {"REPOSITORY", "TAG", "DIGEST", "SIZE", "PULLED", "SOURCE"}};
    for (const auto& record : *refs) {
        if (record.name.empty()) {
            continue;  // entries another tool wrote without a name
        }
        std::string repository = record.name;
        std::string tag = "<none>";
        if (auto ref = oci::Reference::parse(record.name)) {
            repository = ref->familiar();
            if (auto at = repository.find('@'); at != std::string::npos) {
                repository.resize(at);
            }
            if (!ref->tag().empty()) {
                repository.resize(repository.size() - ref->tag().size() - 1);
                tag = ref->tag();
            }
        }
        int64_t size = stored_size(*store, record.target);
        base::Json item = base::Json::object();
        item.set("name", record.name);
        item.set("repository", repository);
        item.set("tag", tag == "<none>" ? base::Json() : base::Json(tag));
        item.set("digest", record.target.digest.str());
        item.set("media_type", record.target.media_type);
        item.set("size", size);
        item.set("source", record.source);
        item.set("pulled_at", record.pulled_at);
        list.push_back(std::move(item));
        rows.push_back({repository, tag, record.target.digest.short_str(), human_size(size),
                        record.pulled_at.empty() ? "-" : record.pulled_at,
                        record.source.empty() ? "-" : record.source});
    }
    if (parsed->has("json")) {
        std::printf("%s\n", list.dump(true).c_str());
    } else {
        print_table(rows);
    }
    return kExitOk;
}

}  // namespace locald::cli
