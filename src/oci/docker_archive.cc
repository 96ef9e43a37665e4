#include "oci/internal/docker_archive.h"

#include <unistd.h>

#include <map>
#include <optional>

#include "base/json.h"
#include "base/sys.h"
#include "oci/internal/codec.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/reference.h"

namespace locald::oci::internal {

namespace {

constexpr size_t kChunk = 1 << 20;
constexpr size_t kMaxManifestJsonBytes = 16 * 1024 * 1024;
constexpr size_t kMaxRepositoriesBytes = 16 * 1024 * 1024;

base::Result<std::string> read_member(const MemberOpener& open_member, const std::string& name,
                                      size_t max_bytes, std::string_view source) {
    auto fd = TRY(open_member(name));
    auto st = TRY(base::fstat_fd(fd.get()));
    if (static_cast<size_t>(st.st_size) > max_bytes) {
        return base::invalid_argument("`{}` in `{}` is {} bytes, more than the {}-byte limit", name,
                                      source, st.st_size, max_bytes);
    }
    return base::read_all(fd.get(), max_bytes);
}

// What a layer file that is not a plain tar starts with, for the message.
std::string_view compression_of(std::string_view head) {
    if (head.starts_with("\x1f\x8b")) {
        return "gzip";
    }
    if (head.starts_with("\x28\xb5\x2f\xfd")) {
        return "zstd";
    }
    return "";
}

// Streams one layer member into the store, verifying it against the diff_id.
base::Result<Descriptor> import_layer(ContentStore& store, const MemberOpener& open_member,
                                      const std::string& name, const Digest& diff_id,
                                      std::string_view where) {
    auto fd = TRY(open_member(name).context(where));
    auto st = TRY(base::fstat_fd(fd.get()));
    Descriptor layer;
    layer.media_type = std::string(media_types::kDockerLayer);
    layer.digest = diff_id;
    layer.size = st.st_size;
    // The member is hashed even when the store already holds the blob: the
    // manifest's size comes from it, so it must be the same bytes.
    std::optional<IngestWriter> writer;
    if (!store.has(diff_id)) {
        writer = TRY(store.begin_ingest(diff_id.str(), diff_id, layer.size));
        if (writer && writer->offset() != 0) {
            writer->discard();
            writer = TRY(store.begin_ingest(diff_id.str(), diff_id, layer.size));
        }
    }
    Digester digester;
    std::string buffer(kChunk, '\0');
    std::string head;
    int64_t total = 0;
    auto fail = [&](base::Error error) -> base::Result<Descriptor> {
        if (writer) {
            writer->discard();
        }
        return error;
    };
    while (true) {
        ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return fail(base::errno_error("reading `{}` in {}", name, where));
        }
        if (n == 0) {
            break;
        }
        std::string_view chunk(buffer.data(), static_cast<size_t>(n));
        if (head.size() < 8) {
            head.append(chunk.substr(0, 8 - head.size()));
        }
        total += n;
        if (total > layer.size) {
            return fail(base::data_loss("`{}` in {} grew while it was read", name, where));
        }
        digester.update(chunk);
        if (writer) {
            if (auto written = writer->write(chunk); !written) {
                return fail(written.release_error());
            }
        }
    }
    Digest actual = digester.digest();
    if (actual != diff_id || total != layer.size) {
        std::string_view compression = compression_of(head);
        if (!compression.empty()) {
            return fail(base::data_loss(
                "layer `{}` in {} is {}-compressed; a docker save archive holds plain tar layers "
                "whose sha256 is the config's diff_id `{}`",
                name, where, compression, diff_id.str()));
        }
        return fail(base::data_loss(
            "layer `{}` in {} is corrupt: it hashes to `{}`, but the config's diff_id is `{}`",
            name, where, actual.str(), diff_id.str()));
    }
    if (writer) {
        TRY(writer->commit(diff_id, layer.size));
    }
    return layer;
}

// `repositories` ({"name": {"tag": "<top layer id>"}}) inverted: top layer
// id → refs. Only consulted for entries without RepoTags.
base::Result<std::multimap<std::string, std::string>> read_repositories(
    const MemberOpener& open_member, const std::string& source) {
    std::multimap<std::string, std::string> out;
    auto text = read_member(open_member, "repositories", kMaxRepositoriesBytes, source);
    if (!text) {
        if (text.error().kind() == base::ErrorKind::NotFound) {
            return out;
        }
        return text.release_error();
    }
    auto json = base::Json::parse(*text);
    if (!json || !json->is_object()) {
        return base::invalid_argument("`{}`: `repositories` is not a JSON object", source);
    }
    for (const auto& [repo, tags] : json->as_object()) {
        if (!tags.is_object()) {
            return base::invalid_argument("`{}`: `repositories` entry `{}` is not an object",
                                          source, repo);
        }
        for (const auto& [tag, id] : tags.as_object()) {
            if (!id.is_string()) {
                return base::invalid_argument("`{}`: `repositories` {}:{} is not a string", source,
                                              repo, tag);
            }
            out.emplace(id.as_string(), repo + ":" + tag);
        }
    }
    return out;
}

base::Result<std::vector<std::string>> string_list(const base::Json* value, std::string_view key,
                                                   std::string_view where, bool required) {
    std::vector<std::string> out;
    if (!value || value->is_null()) {
        if (required) {
            return base::invalid_argument("{} has no `{}`", where, key);
        }
        return out;
    }
    if (!value->is_array()) {
        return base::invalid_argument("{}: `{}` is not an array", where, key);
    }
    for (const auto& item : value->as_array()) {
        if (!item.is_string() || item.as_string().empty()) {
            return base::invalid_argument("{}: `{}` holds something other than a name", where, key);
        }
        out.push_back(item.as_string());
    }
    return out;
}

// The hex digest a config member's name carries, if it has the shape
// Docker gives it.
std::optional<std::string> digest_in_name(std::string_view name) {
    auto is_hex64 = [](std::string_view text) {
        return text.size() == 64 && text.find_first_not_of("0123456789abcdef") == text.npos;
    };
    if (name.starts_with("blobs/sha256/") && is_hex64(name.substr(13))) {
        return std::string(name.substr(13));
    }
    if (name.ends_with(".json") && is_hex64(name.substr(0, name.size() - 5))) {
        return std::string(name.substr(0, name.size() - 5));
    }
    return std::nullopt;
}

}  // namespace

base::Result<std::string> normalize_member_name(std::string_view name, std::string_view where) {
    if (name.starts_with("/")) {
        return base::invalid_argument("unsafe member `{}` in `{}`: absolute path", name, where);
    }
    std::string out;
    size_t start = 0;
    while (start <= name.size()) {
        size_t slash = name.find('/', start);
        std::string_view part = name.substr(
            start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
        if (part == "..") {
            return base::invalid_argument("unsafe member `{}` in `{}`: `..` component", name,
                                          where);
        }
        if (!part.empty() && part != ".") {
            if (!out.empty()) {
                out += '/';
            }
            out += part;
        }
        if (slash == std::string_view::npos) {
            break;
        }
        start = slash + 1;
    }
    return out;
}

base::Result<std::vector<ImportedImage>> import_docker_archive(ContentStore& store,
                                                               const MemberOpener& open_member,
                                                               const std::string& source) {
    std::string text = TRY(read_member(open_member, "manifest.json", kMaxManifestJsonBytes, source)
                               .context(fmt::format("reading `{}`", source)));
    auto json = base::Json::parse(text);
    if (!json) {
        return base::invalid_argument("`{}`: manifest.json is not valid JSON: {}", source,
                                      json.error().message());
    }
    if (!json->is_array()) {
        return base::invalid_argument("`{}`: manifest.json is not a JSON array", source);
    }
    if (json->as_array().empty()) {
        return base::invalid_argument("`{}`: manifest.json lists no image", source);
    }
    auto repositories = TRY(read_repositories(open_member, source));

    std::vector<ImportedImage> imported;
    size_t position = 0;
    for (const auto& entry : json->as_array()) {
        std::string where = fmt::format("`{}` manifest.json entry {}", source, position++);
        if (!entry.is_object()) {
            return base::invalid_argument("{} is not an object", where);
        }
        const base::Json* config_name = entry.find("Config");
        if (!config_name || !config_name->is_string() || config_name->as_string().empty()) {
            return base::invalid_argument("{} has no `Config` member name", where);
        }
        auto layer_names = TRY(string_list(entry.find("Layers"), "Layers", where, true));
        auto tags = TRY(string_list(entry.find("RepoTags"), "RepoTags", where, false));
        if (tags.empty() && !layer_names.empty()) {
            // Legacy archives also name the top layer's directory in `repositories`.
            std::string top = TRY(normalize_member_name(layer_names.back(), source));
            std::string id = top.substr(0, top.find('/'));
            auto [begin, end] = repositories.equal_range(id);
            for (auto it = begin; it != end; ++it) {
                tags.push_back(it->second);
            }
        }
        // Names are checked before any blob is copied.
        std::vector<Reference> refs;
        for (const auto& tag : tags) {
            auto ref = Reference::parse(tag);
            if (!ref) {
                return base::invalid_argument("{}: RepoTags `{}` is not a valid reference: {}",
                                              where, tag, ref.error().message());
            }
            refs.push_back(ref.release_value());
        }

        // Config: verbatim bytes, parsed (size-capped) for its diff_ids.
        std::string config_member = TRY(normalize_member_name(config_name->as_string(), source));
        std::string config_raw =
            TRY(read_member(open_member, config_member, kMaxManifestBytes, source).context(where));
        Descriptor config_descriptor;
        config_descriptor.media_type = std::string(media_types::kDockerConfig);
        config_descriptor.digest = Digest::sha256_of(config_raw);
        // Docker names the config by its digest (`<hex>.json`, or
        // `blobs/sha256/<hex>` since 25): a name that disagrees is tampering.
        if (auto named = digest_in_name(config_member);
            named && *named != config_descriptor.digest.hex()) {
            return base::data_loss("{}: config `{}` is corrupt: it hashes to `{}`", where,
                                   config_member, config_descriptor.digest.str());
        }
        auto config = TRY(parse_image_config(config_raw)
                              .context(fmt::format("{}: config `{}`", where, config_member)));
        if (config.diff_ids.size() != layer_names.size()) {
            return base::invalid_argument(
                "{}: config `{}` lists {} diff_ids but the entry lists {} layers", where,
                config_member, config.diff_ids.size(), layer_names.size());
        }
        config_descriptor.size = static_cast<int64_t>(config_raw.size());

        std::vector<Descriptor> layers;
        for (size_t i = 0; i < layer_names.size(); ++i) {
            std::string member = TRY(normalize_member_name(layer_names[i], source));
            layers.push_back(
                TRY(import_layer(store, open_member, member, config.diff_ids[i], where)));
        }
        if (!store.has(config_descriptor.digest)) {
            TRY(store.write_blob(config_raw, config_descriptor.digest));
        }

        // The manifest locald writes for it (compact JSON, fixed key order).
        base::Json manifest_json = base::Json::object({
            {"schemaVersion", 2},
            {"mediaType", std::string(media_types::kDockerManifest)},
            {"config", descriptor_to_json(config_descriptor)},
        });
        base::Json layer_array = base::Json::array();
        for (const auto& layer : layers) {
            layer_array.push_back(descriptor_to_json(layer));
        }
        manifest_json.set("layers", std::move(layer_array));
        std::string manifest_raw = manifest_json.dump();
        // Parse what was written: the same rules as any manifest from outside.
        auto manifest =
            TRY(parse_image_manifest(manifest_raw, media_types::kDockerManifest).context(where));
        Descriptor target;
        target.media_type = std::string(media_types::kDockerManifest);
        target.digest = manifest.digest;
        target.size = static_cast<int64_t>(manifest_raw.size());
        if (!store.has(target.digest)) {
            TRY(store.write_blob(manifest_raw, target.digest));
        }

        if (refs.empty()) {
            ImportedImage image;
            image.target = target;
            imported.push_back(std::move(image));  // reported by the caller
            continue;
        }
        for (const auto& ref : refs) {
            RefRecord record;
            record.name = ref.str();
            record.target = target;
            record.source = "load:" + source;
            TRY(store.set_ref(std::move(record)));
            ImportedImage image;
            image.name = ref.str();
            image.target = target;
            imported.push_back(std::move(image));
        }
    }
    return imported;
}

}  // namespace locald::oci::internal
