#include "oci/layout.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <set>

#include "base/atomic_file.h"
#include "base/confined.h"
#include "base/json.h"
#include "base/sys.h"
#include "oci/image.h"
#include "oci/internal/codec.h"
#include "oci/internal/docker_archive.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

namespace locald::oci {

namespace {

constexpr size_t kChunk = 1 << 20;
constexpr char kOciLayoutContent[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
constexpr size_t kMaxIndexJsonBytes = 64 * 1024 * 1024;

struct ArchiveWriteDeleter {
    void operator()(struct archive* a) const { archive_write_free(a); }
};
struct ArchiveReadDeleter {
    void operator()(struct archive* a) const { archive_read_free(a); }
};
struct EntryDeleter {
    void operator()(struct archive_entry* e) const { archive_entry_free(e); }
};

bool ends_with_tar(std::string_view path) {
    return path.ends_with(".tar");
}

// Reads `fd` to EOF in chunks, calling `sink` with each; verifies size and
// digest at the end (a store blob or a layout blob is untrusted until then).
template <typename Sink>
base::Result<void> copy_verified(int fd, const Descriptor& descriptor, std::string_view where,
                                 Sink&& sink) {
    Digester digester(descriptor.digest.algorithm());
    std::string buffer(kChunk, '\0');
    int64_t total = 0;
    while (true) {
        ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return base::errno_error("reading blob `{}` from {}", descriptor.digest.str(), where);
        }
        if (n == 0) {
            break;
        }
        total += n;
        if (total > descriptor.size) {
            return base::data_loss("blob `{}` in {} is larger than its descriptor's {} bytes",
                                   descriptor.digest.str(), where, descriptor.size);
        }
        std::string_view chunk(buffer.data(), static_cast<size_t>(n));
        digester.update(chunk);
        TRY(sink(chunk));
    }
    if (total != descriptor.size) {
        return base::data_loss("blob `{}` in {} is {} bytes, its descriptor says {}",
                               descriptor.digest.str(), where, total, descriptor.size);
    }
    Digest actual = digester.digest();
    if (actual != descriptor.digest) {
        return base::data_loss("blob `{}` in {} is corrupt: its data hashes to `{}`",
                               descriptor.digest.str(), where, actual.str());
    }
    return base::ok();
}

std::string index_json_for(const std::vector<std::pair<Reference, Descriptor>>& roots) {
    base::Json json = base::Json::object();
    json.set("schemaVersion", 2);
    json.set("mediaType", media_types::kOciIndex);
    base::Json manifests = base::Json::array();
    for (const auto& [ref, root] : roots) {
        Descriptor descriptor = root;
        descriptor.annotations[std::string(media_types::kAnnotationContainerdImageName)] =
            ref.str();
        if (!ref.tag().empty()) {
            descriptor.annotations[std::string(media_types::kAnnotationRefName)] = ref.tag();
        }
        manifests.push_back(internal::descriptor_to_json(descriptor));
    }
    json.set("manifests", std::move(manifests));
    return json.dump(true) + "\n";
}

base::Result<void> archive_check(struct archive* a, int status, std::string_view what) {
    if (status < ARCHIVE_WARN) {
        const char* message = archive_error_string(a);
        return base::internal_error("{}: {}", what, message ? message : "libarchive error");
    }
    return base::ok();
}

base::Result<void> tar_add(struct archive* a, const std::string& name, int64_t size, mode_t type) {
    std::unique_ptr<struct archive_entry, EntryDeleter> entry(archive_entry_new());
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_filetype(entry.get(), type);
    archive_entry_set_perm(entry.get(), type == AE_IFDIR ? 0755 : 0644);
    archive_entry_set_size(entry.get(), type == AE_IFDIR ? 0 : size);
    archive_entry_set_mtime(entry.get(), 0, 0);  // reproducible output
    return archive_check(a, archive_write_header(a, entry.get()), "writing tar header");
}

base::Result<void> tar_add_bytes(struct archive* a, const std::string& name,
                                 std::string_view data) {
    TRY(tar_add(a, name, static_cast<int64_t>(data.size()), AE_IFREG));
    if (!data.empty() && archive_write_data(a, data.data(), data.size()) < 0) {
        return archive_check(a, ARCHIVE_FATAL, fmt::format("writing `{}` to the tar", name));
    }
    return base::ok();
}

}  // namespace

base::Result<void> export_layout(const ContentStore& store, const std::vector<Reference>& refs,
                                 const std::string& path) {
    if (refs.empty()) {
        return base::invalid_argument("nothing to save: give at least one image");
    }
    std::vector<std::pair<Reference, Descriptor>> roots;
    std::vector<Descriptor> blobs;
    std::set<Digest> seen;
    for (const auto& ref : refs) {
        Descriptor root = TRY(store.resolve(ref));
        roots.emplace_back(ref, root);
        for (auto& descriptor : TRY(image_closure(store, root, true).context(ref.str()))) {
            if (seen.insert(descriptor.digest).second) {
                blobs.push_back(std::move(descriptor));
            }
        }
    }
    std::string index_json = index_json_for(roots);

    if (ends_with_tar(path)) {
        // Write to a temporary name and rename, so a failed save leaves no
        // truncated tar that looks like a real one.
        std::string temp = path + ".partial";
        std::unique_ptr<struct archive, ArchiveWriteDeleter> a(archive_write_new());
        archive_write_set_format_pax_restricted(a.get());
        TRY(archive_check(a.get(), archive_write_open_filename(a.get(), temp.c_str()),
                          fmt::format("creating `{}`", temp)));
        auto fail = [&](base::Error error) -> base::Error {
            a.reset();
            ::unlink(temp.c_str());
            return error;
        };
        auto write_all = [&]() -> base::Result<void> {
            TRY(tar_add_bytes(a.get(), "oci-layout", kOciLayoutContent));
            TRY(tar_add(a.get(), "blobs/", 0, AE_IFDIR));
            TRY(tar_add(a.get(), "blobs/sha256/", 0, AE_IFDIR));
            bool has_sha512 = false;
            for (const auto& blob : blobs) {
                if (blob.digest.algorithm() == DigestAlgorithm::Sha512 && !has_sha512) {
                    has_sha512 = true;
                    TRY(tar_add(a.get(), "blobs/sha512/", 0, AE_IFDIR));
                }
                auto fd = TRY(store.open_blob(blob.digest));
                TRY(tar_add(a.get(), blob.digest.layout_path(), blob.size, AE_IFREG));
                TRY(copy_verified(fd.get(), blob, "the local store",
                                  [&](std::string_view chunk) -> base::Result<void> {
                                      if (archive_write_data(a.get(), chunk.data(), chunk.size()) <
                                          0) {
                                          return archive_check(a.get(), ARCHIVE_FATAL,
                                                               "writing a blob to the tar");
                                      }
                                      return base::ok();
                                  }));
            }
            TRY(tar_add_bytes(a.get(), "index.json", index_json));
            TRY(archive_check(a.get(), archive_write_close(a.get()), "finishing the tar"));
            return base::ok();
        };
        if (auto written = write_all(); !written) {
            return fail(written.release_error().context(fmt::format("saving to `{}`", path)));
        }
        a.reset();
        if (auto renamed = base::rename_path(temp, path); !renamed) {
            return fail(renamed.release_error());
        }
        return base::ok();
    }

    // A directory: must be new or empty, so we never mix with another layout.
    if (TRY(base::path_exists(path))) {
        auto st = TRY(base::lstat_path(path));
        if (!S_ISDIR(st.st_mode)) {
            return base::already_exists("cannot save to `{}`: it exists and is not a directory",
                                        path);
        }
        if (TRY(base::path_exists(path + "/index.json")) ||
            TRY(base::path_exists(path + "/oci-layout"))) {
            return base::already_exists(
                "cannot save to `{}`: it already holds an OCI layout (choose a new directory)",
                path);
        }
    }
    TRY(base::mkdir_p(path + "/blobs/sha256", 0755));
    for (const auto& blob : blobs) {
        std::string target = path + "/" + blob.digest.layout_path();
        TRY(base::mkdir_p(target.substr(0, target.rfind('/')), 0755));
        auto in = TRY(store.open_blob(blob.digest));
        auto file = TRY(base::AtomicFile::create(target, 0644));
        TRY(copy_verified(in.get(), blob, "the local store",
                          [&](std::string_view chunk) { return file.write(chunk); }));
        TRY(file.commit());
    }
    TRY(base::atomic_write_file(path + "/oci-layout", kOciLayoutContent, 0644));
    TRY(base::atomic_write_file(path + "/index.json", index_json, 0644));
    return base::ok();
}

namespace {

// The name an index.json entry of a foreign layout gives its image.
std::optional<Reference> name_of(const Descriptor& entry) {
    for (auto key :
         {media_types::kAnnotationContainerdImageName, media_types::kAnnotationRefName}) {
        std::string value = entry.annotation(key);
        // A bare tag ("1.0", as skopeo writes) names no repository.
        if (value.empty() || value.find_first_of("/:@") == std::string::npos) {
            continue;
        }
        auto ref = Reference::parse(value);
        if (ref) {
            return ref.release_value();
        }
    }
    return std::nullopt;
}

// Opens `blobs/<alg>/<hex>` under a layout dir without following a symlink
// at the leaf.
base::Result<base::UniqueFd> open_layout_blob(const std::string& root, const Digest& digest) {
    // O_NONBLOCK: a FIFO in place of a blob must not block the open.
    std::string path = root + "/" + digest.layout_path();
    auto fd = base::open_file(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    if (!fd && fd.error().kind() == base::ErrorKind::NotFound) {
        return base::not_found("the layout `{}` lacks blob `{}`", root, digest.str());
    }
    if (!fd) {
        return fd;
    }
    auto st = TRY(base::fstat_fd(fd->get()));
    if (!S_ISREG(st.st_mode)) {
        return base::invalid_argument("blob `{}` of the layout `{}` is not a regular file (`{}`)",
                                      digest.str(), root, path);
    }
    if (fcntl(fd->get(), F_SETFL, O_RDONLY) != 0) {
        return base::errno_error("opening `{}`", path);
    }
    return fd;
}

base::Result<std::string> read_layout_document(const std::string& root,
                                               const Descriptor& descriptor) {
    if (descriptor.size > static_cast<int64_t>(kMaxManifestBytes)) {
        return base::invalid_argument("manifest `{}` is {} bytes, more than the {}-byte limit",
                                      descriptor.digest.str(), descriptor.size, kMaxManifestBytes);
    }
    auto fd = TRY(open_layout_blob(root, descriptor.digest));
    std::string out;
    TRY(copy_verified(fd.get(), descriptor, fmt::format("`{}`", root),
                      [&](std::string_view chunk) -> base::Result<void> {
                          out.append(chunk);
                          return base::ok();
                      }));
    return out;
}

// Copies the closure of `root` from the layout at `dir` into the store.
base::Result<void> import_closure(ContentStore& store, const std::string& dir,
                                  const Descriptor& root) {
    std::vector<std::pair<Descriptor, bool>> pending{{root, false}};
    std::set<Digest> seen;
    while (!pending.empty()) {
        auto [descriptor, optional] = std::move(pending.back());
        pending.pop_back();
        if (!seen.insert(descriptor.digest).second) {
            continue;
        }
        bool is_index = media_types::is_index(descriptor.media_type);
        bool is_manifest = media_types::is_manifest(descriptor.media_type);
        if (is_index || is_manifest) {
            auto raw = read_layout_document(dir, descriptor);
            if (!raw) {
                if (optional && raw.error().kind() == base::ErrorKind::NotFound) {
                    continue;  // a layout may hold only some platforms
                }
                return raw.release_error();
            }
            if (is_index) {
                auto index = TRY(parse_image_index(*raw, descriptor.media_type));
                for (const auto& child : index.manifests) {
                    pending.push_back({child, true});
                }
            } else {
                auto manifest = TRY(parse_image_manifest(*raw, descriptor.media_type));
                pending.push_back({manifest.config, false});
                for (const auto& layer : manifest.layers) {
                    if (media_types::is_nondistributable(layer.media_type)) {
                        // Foreign layers may be absent from a layout by design.
                        auto exists =
                            TRY(base::path_exists(dir + "/" + layer.digest.layout_path()));
                        if (!exists) {
                            continue;
                        }
                    }
                    pending.push_back({layer, false});
                }
            }
            if (!store.has(descriptor.digest)) {
                TRY(store.write_blob(*raw, descriptor.digest));
            }
            continue;
        }
        if (store.has(descriptor.digest)) {
            continue;
        }
        auto fd = TRY(open_layout_blob(dir, descriptor.digest));
        auto writer =
            TRY(store.begin_ingest(descriptor.digest.str(), descriptor.digest, descriptor.size));
        if (!writer) {
            continue;
        }
        if (writer->offset() != 0) {
            writer->discard();
            writer = TRY(
                store.begin_ingest(descriptor.digest.str(), descriptor.digest, descriptor.size));
            if (!writer) {
                continue;
            }
        }
        auto copied = copy_verified(fd.get(), descriptor, fmt::format("`{}`", dir),
                                    [&](std::string_view chunk) { return writer->write(chunk); });
        if (!copied) {
            writer->discard();
            return copied.release_error();
        }
        TRY(writer->commit(descriptor.digest, descriptor.size));
    }
    return base::ok();
}

// read_file for a layout's own files: a FIFO (or device) there is an error,
// never an open(2) that blocks the load.
base::Result<std::string> read_regular_file(const std::string& path, size_t max_bytes) {
    auto fd = TRY(base::open_file(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    auto st = TRY(base::fstat_fd(fd.get()));
    if (!S_ISREG(st.st_mode)) {
        return base::invalid_argument("`{}` is not a regular file", path);
    }
    if (fcntl(fd.get(), F_SETFL, O_RDONLY) != 0) {
        return base::errno_error("opening `{}`", path);
    }
    return base::read_all(fd.get(), max_bytes);
}

base::Result<std::vector<ImportedImage>> import_directory(ContentStore& store,
                                                          const std::string& dir,
                                                          const std::string& source) {
    auto layout = read_regular_file(dir + "/oci-layout", 4096);
    if (!layout) {
        return base::invalid_argument("`{}` is not an OCI image layout (no readable oci-layout)",
                                      source);
    }
    auto layout_json = base::Json::parse(*layout);
    if (!layout_json || !layout_json->is_object() ||
        layout_json->find("imageLayoutVersion") == nullptr) {
        return base::invalid_argument("`{}`: oci-layout is not valid", source);
    }
    std::string text = TRY(read_regular_file(dir + "/index.json", kMaxIndexJsonBytes)
                               .context(fmt::format("reading `{}`", source)));
    auto index = TRY(parse_image_index(std::move(text), "")
                         .context(fmt::format("reading `{}` index.json", source)));
    std::vector<ImportedImage> imported;
    for (const auto& entry : index.manifests) {
        ImportedImage image;
        image.target = entry;
        image.target.annotations.clear();
        auto name = name_of(entry);
        if (!name) {
            imported.push_back(std::move(image));
            continue;  // reported by the caller; nothing copied for it
        }
        image.name = name->str();
        TRY(import_closure(store, dir, image.target)
                .context(fmt::format("loading {}", image.name)));
        RefRecord record;
        record.name = image.name;
        record.target = image.target;
        record.source = "load:" + source;
        TRY(store.set_ref(std::move(record)));
        imported.push_back(std::move(image));
    }
    return imported;
}

// Member names the tar may hold; anything else is skipped, anything unsafe
// is an error.
base::Result<std::optional<std::string>> tar_member_target(std::string_view name,
                                                           std::string_view tar_path) {
    std::string_view clean = name;
    while (clean.starts_with("./")) {
        clean.remove_prefix(2);
    }
    if (clean.starts_with("/")) {
        return base::invalid_argument("unsafe member `{}` in `{}`: absolute path", name, tar_path);
    }
    size_t start = 0;
    while (start <= clean.size()) {
        auto slash = clean.find('/', start);
        auto part = clean.substr(start, slash == std::string_view::npos ? slash : slash - start);
        if (part == "..") {
            return base::invalid_argument("unsafe member `{}` in `{}`: `..` component", name,
                                          tar_path);
        }
        if (slash == std::string_view::npos) {
            break;
        }
        start = slash + 1;
    }
    while (clean.ends_with("/")) {
        clean.remove_suffix(1);
    }
    if (clean == "oci-layout" || clean == "index.json") {
        return std::optional<std::string>(std::string(clean));
    }
    if (clean.starts_with("blobs/")) {
        std::string_view rest = clean.substr(6);
        auto slash = rest.find('/');
        if (slash == std::string_view::npos) {
            return std::optional<std::string>();  // the blobs/<alg> directory itself
        }
        auto digest =
            Digest::parse(fmt::format("{}:{}", rest.substr(0, slash), rest.substr(slash + 1)));
        if (!digest) {
            return base::invalid_argument("unexpected member `{}` in `{}`: {}", name, tar_path,
                                          digest.error().message());
        }
        return std::optional<std::string>(digest->layout_path());
    }
    return std::optional<std::string>();
}

// Members of a tar other than the layout's own files, kept for a `docker
// save` manifest.json to name: regular files under `<scratch>/members/<n>`
// (never at a path taken from the tar) and links as aliases that are only
// ever resolved by name, never created on disk.
struct ExtractedMembers {
    std::map<std::string, std::string> files;  // normalised member name → file on disk
    std::map<std::string, std::string> links;  // normalised member name → member it names
};

// Where a link member points, as a normalised member name. Symlink targets
// are relative to the link's directory, hardlink targets to the archive
// root; neither may leave the archive.
base::Result<std::string> link_target(const std::string& member, std::string_view target,
                                      bool hardlink, std::string_view tar_path) {
    if (target.starts_with("/")) {
        return base::invalid_argument("unsafe member `{}` in `{}`: link to an absolute path",
                                      member, tar_path);
    }
    std::vector<std::string> parts;
    if (!hardlink) {
        size_t start = 0;
        for (size_t slash; (slash = member.find('/', start)) != std::string::npos;
             start = slash + 1) {
            parts.push_back(member.substr(start, slash - start));
        }
    }
    size_t start = 0;
    while (start <= target.size()) {
        size_t slash = target.find('/', start);
        std::string_view part = target.substr(
            start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
        if (part == "..") {
            if (parts.empty()) {
                return base::invalid_argument(
                    "unsafe member `{}` in `{}`: its link target leaves the archive", member,
                    tar_path);
            }
            parts.pop_back();
        } else if (!part.empty() && part != ".") {
            parts.emplace_back(part);
        }
        if (slash == std::string_view::npos) {
            break;
        }
        start = slash + 1;
    }
    std::string out;
    for (const auto& part : parts) {
        out += out.empty() ? part : "/" + part;
    }
    return out;
}

base::Result<void> extract_layout_tar(const std::string& tar_path, const std::string& dir,
                                      ExtractedMembers& members) {
    std::unique_ptr<struct archive, ArchiveReadDeleter> a(archive_read_new());
    archive_read_support_format_tar(a.get());
    archive_read_support_filter_gzip(a.get());
    archive_read_support_filter_zstd(a.get());
    if (archive_read_open_filename(a.get(), tar_path.c_str(), kChunk) != ARCHIVE_OK) {
        const char* message = archive_error_string(a.get());
        return base::invalid_argument("cannot read `{}` as a tar: {}", tar_path,
                                      message ? message : "unknown error");
    }
    TRY(base::mkdir_p(dir + "/blobs/sha256", 0700));
    TRY(base::mkdir_p(dir + "/blobs/sha512", 0700));
    TRY(base::mkdir_p(dir + "/members", 0700));
    struct archive_entry* entry = nullptr;
    while (true) {
        int status = archive_read_next_header(a.get(), &entry);
        if (status == ARCHIVE_EOF) {
            break;
        }
        if (status < ARCHIVE_WARN) {
            const char* message = archive_error_string(a.get());
            return base::invalid_argument("reading `{}`: {}", tar_path,
                                          message ? message : "corrupt tar");
        }
        const char* raw_name = archive_entry_pathname(entry);
        std::string name = raw_name ? raw_name : "";
        auto type = archive_entry_filetype(entry);
        std::string member = TRY(internal::normalize_member_name(name, tar_path));
        bool layout_name =
            member == "oci-layout" || member == "index.json" || member.starts_with("blobs/");
        const char* hardlink = archive_entry_hardlink(entry);
        if (hardlink != nullptr || type == AE_IFLNK) {
            if (layout_name) {
                return base::invalid_argument("unsafe member `{}` in `{}`: links are not allowed",
                                              name, tar_path);
            }
            // docker save links a repeated layer to its first copy.
            const char* symlink = archive_entry_symlink(entry);
            std::string aliased = TRY(link_target(member,
                                                  hardlink  ? hardlink
                                                  : symlink ? symlink
                                                            : "",
                                                  hardlink != nullptr, tar_path));
            if (members.files.contains(member) ||
                !members.links.emplace(member, std::move(aliased)).second) {
                return base::invalid_argument("`{}` holds `{}` twice", tar_path, name);
            }
            continue;
        }
        auto target = TRY(tar_member_target(name, tar_path));
        if (type == AE_IFDIR || member.empty() || (!target && layout_name)) {
            continue;
        }
        if (type != AE_IFREG) {
            if (!target) {
                continue;  // not an image file in either format
            }
            return base::invalid_argument("unexpected member `{}` in `{}`: not a regular file",
                                          name, tar_path);
        }
        if (archive_entry_sparse_count(entry) > 0) {
            // A few bytes of tar could declare terabytes of holes, which the
            // import then reads and writes into the store in full.
            return base::invalid_argument(
                "unsupported member `{}` in `{}`: a sparse file (image tars hold plain files)",
                name, tar_path);
        }
        if (members.files.contains(member) || members.links.contains(member)) {
            return base::invalid_argument("`{}` holds `{}` twice", tar_path, name);
        }
        // Paths are rebuilt from validated parts only (or numbered), and
        // created O_EXCL without following symlinks: a duplicate member is
        // an error.
        std::string path =
            target ? dir + "/" + *target : fmt::format("{}/members/{}", dir, members.files.size());
        members.files.emplace(member, path);
        auto out = base::open_file(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
        if (!out) {
            if (out.error().kind() == base::ErrorKind::AlreadyExists) {
                return base::invalid_argument("`{}` holds `{}` twice", tar_path, name);
            }
            return out.release_error();
        }
        const void* block = nullptr;
        size_t size = 0;
        la_int64_t offset = 0;
        while ((status = archive_read_data_block(a.get(), &block, &size, &offset)) == ARCHIVE_OK) {
            if (pwrite(out->get(), block, size, offset) != static_cast<ssize_t>(size)) {
                return base::errno_error("extracting `{}` from `{}`", name, tar_path);
            }
        }
        if (status != ARCHIVE_EOF) {
            const char* message = archive_error_string(a.get());
            return base::invalid_argument("reading `{}` from `{}`: {}", name, tar_path,
                                          message ? message : "truncated tar");
        }
    }
    return base::ok();
}

}  // namespace

base::Result<std::vector<ImportedImage>> import_layout(ContentStore& store,
                                                       const std::string& path) {
    // Blobs are unreferenced until set_ref: keep prune away meanwhile.
    auto lease = TRY(store.hold_write_lease());
    auto st = base::stat_path(path);
    if (!st) {
        return base::not_found("cannot load `{}`: no such file or directory", path);
    }
    if (S_ISDIR(st->st_mode)) {
        if (TRY(base::path_exists(path + "/oci-layout")) ||
            !TRY(base::path_exists(path + "/manifest.json"))) {
            return import_directory(store, path, path);
        }
        // An unpacked `docker save`: names from manifest.json resolve
        // inside the directory only (symlinks included).
        auto root = TRY(base::open_file(path, O_RDONLY | O_DIRECTORY));
        auto open_member = [&](const std::string& name) -> base::Result<base::UniqueFd> {
            // O_NONBLOCK: a FIFO (or device) named by manifest.json must
            // not block the open; it is refused below as not a regular file.
            auto fd = base::open_in_root(root.get(), name, O_RDONLY | O_NONBLOCK);
            if (!fd) {
                if (fd.error().kind() == base::ErrorKind::NotFound) {
                    return base::not_found("`{}` has no `{}`", path, name);
                }
                return fd.release_error().context(fmt::format("opening `{}` in `{}`", name, path));
            }
            auto member_st = TRY(base::fstat_fd(fd->get()));
            if (!S_ISREG(member_st.st_mode)) {
                return base::invalid_argument("`{}` in `{}` is not a regular file", name, path);
            }
            if (fcntl(fd->get(), F_SETFL, O_RDONLY) != 0) {
                return base::errno_error("opening `{}` in `{}`", name, path);
            }
            return fd;
        };
        return internal::import_docker_archive(store, open_member, path);
    }
    // A tar: unpack the layout's files into a private scratch directory
    // inside the data dir (same filesystem as the store), then import it.
    std::string scratch = fmt::format("{}/ingest/load-{}-{}", store.data_dir(), getpid(),
                                      Digest::sha256_of(path + now_rfc3339()).hex().substr(0, 12));
    TRY(base::remove_all(scratch));
    TRY(base::mkdir_p(scratch, 0700));
    auto result = [&]() -> base::Result<std::vector<ImportedImage>> {
        ExtractedMembers members;
        TRY(extract_layout_tar(path, scratch, members));
        bool oci = members.files.contains("oci-layout") || members.files.contains("index.json");
        if (oci || !members.files.contains("manifest.json")) {
            if (!oci) {
                return base::invalid_argument(
                    "`{}` is neither an OCI image layout (oci-layout, index.json) nor a docker "
                    "save archive (manifest.json)",
                    path);
            }
            return import_directory(store, scratch, path);
        }
        auto open_member = [&](const std::string& name) -> base::Result<base::UniqueFd> {
            std::string current = name;
            for (int hops = 0; hops < 16; ++hops) {
                if (auto it = members.files.find(current); it != members.files.end()) {
                    return base::open_file(it->second, O_RDONLY | O_NOFOLLOW);
                }
                auto link = members.links.find(current);
                if (link == members.links.end()) {
                    return base::not_found("`{}` has no member `{}`", path, name);
                }
                current = link->second;
            }
            return base::invalid_argument("`{}`: member `{}` is a chain of too many links", path,
                                          name);
        };
        return internal::import_docker_archive(store, open_member, path);
    }();
    auto removed = base::remove_all(scratch);
    (void)removed;  // best effort; prune removes stale ingests anyway
    return result;
}

}  // namespace locald::oci
