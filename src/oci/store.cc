#include "oci/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <set>

#include "base/atomic_file.h"
#include "base/json.h"
#include "base/paths.h"
#include "base/sys.h"
#include "oci/internal/codec.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

namespace locald::oci {

namespace {

constexpr size_t kMaxIndexJsonBytes = 64 * 1024 * 1024;
constexpr size_t kCopyChunk = 1 << 20;
constexpr char kOciLayoutContent[] = "{\"imageLayoutVersion\":\"1.0.0\"}";

// flock with EINTR retry. `operation` is LOCK_EX / LOCK_SH, maybe | LOCK_NB.
base::Result<void> lock_fd(int fd, int operation, std::string_view what) {
    while (flock(fd, operation) != 0) {
        if (errno == EINTR) {
            continue;
        }
        return base::errno_error("locking `{}`", what);
    }
    return base::ok();
}

// An exclusive flock on a lock file, released when dropped.
base::Result<base::UniqueFd> lock_file(const std::string& path) {
    auto fd = TRY(base::open_file(path, O_RDWR | O_CREAT, 0600));
    TRY(lock_fd(fd.get(), LOCK_EX, path));
    return fd;
}

std::string read_small(const std::string& path) {
    auto content = base::read_file(path, 4096);
    return content ? content.release_value() : std::string();
}

base::Result<std::vector<std::string>> list_dir(const std::string& path) {
    std::vector<std::string> names;
    DIR* dir = opendir(path.c_str());
    if (dir == nullptr) {
        if (errno == ENOENT) {
            return names;
        }
        return base::errno_error("listing `{}`", path);
    }
    while (struct dirent* entry = readdir(dir)) {
        std::string name = entry->d_name;
        if (name != "." && name != "..") {
            names.push_back(std::move(name));
        }
    }
    closedir(dir);
    std::sort(names.begin(), names.end());
    return names;
}

base::Error not_in_store(const Digest& digest) {
    return base::not_found("blob `{}` is not in the local store", digest.str());
}

}  // namespace

std::string now_rfc3339() {
    std::time_t now = std::time(nullptr);
    struct tm utc {};
    gmtime_r(&now, &utc);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return buffer;
}

// ---------------------------------------------------------------- IngestWriter

IngestWriter::IngestWriter(IngestWriter&&) noexcept = default;
IngestWriter& IngestWriter::operator=(IngestWriter&& other) noexcept {
    if (this != &other) {
        // The writer being replaced is dropped: its gathered bytes go to disk
        // first, as in the destructor.
        if (!m_done && m_fd.valid() && !m_pending.empty()) {
            auto written = base::write_all(m_fd.get(), m_pending);
            (void)written;
        }
        m_store_root = std::move(other.m_store_root);
        m_key = std::move(other.m_key);
        m_dir = std::move(other.m_dir);
        m_fd = std::move(other.m_fd);
        m_offset = other.m_offset;
        m_writeback_from = other.m_writeback_from;
        m_pending = std::move(other.m_pending);
        other.m_pending.clear();
        m_expected_size = other.m_expected_size;
        m_digester = std::move(other.m_digester);
        m_done = other.m_done;
    }
    return *this;
}

IngestWriter::~IngestWriter() {
    // Keeping the partial data is the point: a later begin_ingest resumes it.
    // What is gathered in memory goes to disk first (best effort: a resume
    // re-hashes whatever is there). Closing m_fd releases the flock.
    if (!m_done && m_fd.valid() && !m_pending.empty()) {
        auto written = base::write_all(m_fd.get(), m_pending);
        (void)written;
    }
}

namespace {
constexpr size_t kIngestWriteBuffer = 1 << 20;
constexpr int64_t kIngestWritebackChunk = 8 << 20;
}  // namespace

base::Result<void> IngestWriter::write_out(std::string_view bytes) {
    auto written = base::write_all(m_fd.get(), bytes);
    if (!written) {
        // Disk full and friends: nothing half-useful should linger.
        auto error = written.release_error();
        discard();
        return std::move(error).context(fmt::format("writing ingest `{}`", m_key));
    }
    int64_t on_disk = m_offset - static_cast<int64_t>(m_pending.size());
    if (on_disk - m_writeback_from >= kIngestWritebackChunk) {
        // Start writeback now, overlapping the disk with the network; only a
        // hint (errors surface at the fsync in commit()).
        sync_file_range(m_fd.get(), m_writeback_from, on_disk - m_writeback_from,
                        SYNC_FILE_RANGE_WRITE);
        m_writeback_from = on_disk;
    }
    return base::ok();
}

base::Result<void> IngestWriter::flush() {
    if (m_pending.empty()) {
        return base::ok();
    }
    std::string pending = std::move(m_pending);
    m_pending.clear();
    auto written = write_out(pending);
    m_pending = std::move(pending);  // keep the allocation for the next round
    m_pending.clear();
    return written;
}

base::Result<void> IngestWriter::write(std::string_view data) {
    if (m_done) {
        return base::internal_error("ingest `{}` written after commit/discard", m_key);
    }
    if (m_expected_size >= 0 && m_offset + static_cast<int64_t>(data.size()) > m_expected_size) {
        int64_t total = m_offset + static_cast<int64_t>(data.size());
        discard();
        return base::data_loss("ingest `{}`: received {} bytes or more, but the blob is {} bytes",
                               m_key, total, m_expected_size);
    }
    m_digester.update(data);
    m_offset += static_cast<int64_t>(data.size());
    if (m_pending.empty() && data.size() >= kIngestWriteBuffer) {
        return write_out(data);  // already big: no copy
    }
    if (m_pending.capacity() < kIngestWriteBuffer) {
        m_pending.reserve(kIngestWriteBuffer);
    }
    m_pending.append(data);
    if (m_pending.size() >= kIngestWriteBuffer) {
        return flush();
    }
    return base::ok();
}

base::Result<void> IngestWriter::commit(const Digest& expected, int64_t expected_size) {
    if (m_done) {
        return base::internal_error("ingest `{}` committed twice", m_key);
    }
    if (expected_size >= 0 && m_offset != expected_size) {
        int64_t got = m_offset;
        discard();
        return base::data_loss("blob `{}`: size mismatch: got {} bytes, expected {}",
                               expected.str(), got, expected_size);
    }
    TRY(flush().context(fmt::format("committing blob `{}`", expected.str())));
    if (auto synced = base::fsync_fd(m_fd.get()); !synced) {
        auto error = synced.release_error();
        discard();
        return std::move(error).context(fmt::format("committing blob `{}`", expected.str()));
    }
    Digest actual = m_digester.digest();
    if (actual != expected) {
        discard();
        return base::data_loss("blob `{}`: digest mismatch: the data hashes to `{}`; discarded",
                               expected.str(), actual.str());
    }
    if (fchmod(m_fd.get(), 0444) != 0) {
        auto error = base::errno_error("making blob `{}` read-only", expected.str());
        discard();
        return error;
    }
    std::string target = m_store_root + "/" + expected.layout_path();
    std::string target_dir = target.substr(0, target.rfind('/'));
    if (auto made = base::mkdir_p(target_dir, 0700); !made) {
        discard();
        return made.release_error();
    }
    // Metadata first: once `data` is renamed away another writer may create
    // a fresh ingest here, and must not lose its own metadata to us.
    unlink((m_dir + "/ref").c_str());
    if (auto renamed = base::rename_path(m_dir + "/data", target); !renamed) {
        auto error = renamed.release_error();
        discard();
        return std::move(error).context(fmt::format("committing blob `{}`", expected.str()));
    }
    TRY(base::fsync_dir(target_dir));
    rmdir(m_dir.c_str());  // ENOTEMPTY when a new writer already started: fine
    m_done = true;
    m_fd.reset();
    return base::ok();
}

void IngestWriter::discard() {
    if (m_done) {
        return;
    }
    m_done = true;
    m_pending.clear();
    unlink((m_dir + "/ref").c_str());
    unlink((m_dir + "/data").c_str());
    rmdir(m_dir.c_str());
    m_fd.reset();
}

// ---------------------------------------------------------------- ContentStore

base::Result<std::string> ContentStore::default_data_dir() {
    auto paths = TRY(base::Paths::from_env());
    return paths.data;
}

base::Result<ContentStore> ContentStore::open_default() {
    return open(TRY(default_data_dir()));
}

base::Result<ContentStore> ContentStore::open(std::string data_dir) {
    ContentStore store;
    while (data_dir.size() > 1 && data_dir.back() == '/') {
        data_dir.pop_back();
    }
    store.m_data_dir = data_dir;
    store.m_root = data_dir + "/store";
    store.m_ingest_dir = data_dir + "/ingest";
    store.m_lock_path = data_dir + "/store.lock";
    TRY(base::mkdir_p(store.m_root + "/blobs/sha256", 0700).context("opening the content store"));
    TRY(base::mkdir_p(store.m_ingest_dir, 0700).context("opening the content store"));
    bool has_layout = TRY(base::path_exists(store.m_root + "/oci-layout"));
    bool has_index = TRY(base::path_exists(store.m_root + "/index.json"));
    if (!has_layout || !has_index) {
        auto lock = TRY(lock_file(store.m_lock_path));
        if (!TRY(base::path_exists(store.m_root + "/oci-layout"))) {
            TRY(base::atomic_write_file(store.m_root + "/oci-layout", kOciLayoutContent, 0644));
        }
        if (!TRY(base::path_exists(store.m_root + "/index.json"))) {
            TRY(store.write_index_locked({}));
        }
    }
    return store;
}

std::string ContentStore::blob_path(const Digest& digest) const {
    return m_root + "/" + digest.layout_path();
}

bool ContentStore::has(const Digest& digest) const {
    struct stat st {};
    return !digest.empty() && ::stat(blob_path(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

base::Result<int64_t> ContentStore::blob_size(const Digest& digest) const {
    struct stat st {};
    if (::stat(blob_path(digest).c_str(), &st) != 0) {
        if (errno == ENOENT) {
            return not_in_store(digest);
        }
        return base::errno_error("reading blob `{}`", digest.str());
    }
    return static_cast<int64_t>(st.st_size);
}

base::Result<base::UniqueFd> ContentStore::open_blob(const Digest& digest) const {
    auto fd = base::open_file(blob_path(digest), O_RDONLY);
    if (!fd && fd.error().kind() == base::ErrorKind::NotFound) {
        return not_in_store(digest);
    }
    return fd;
}

base::Result<std::string> ContentStore::read_blob(const Digest& digest, size_t max_bytes,
                                                  int64_t expected_size) const {
    auto fd = TRY(open_blob(digest));
    auto st = TRY(base::fstat_fd(fd.get()));
    if (static_cast<uint64_t>(st.st_size) > max_bytes) {
        return base::invalid_argument("blob `{}` is {} bytes, more than the {}-byte limit",
                                      digest.str(), st.st_size, max_bytes);
    }
    std::string data = TRY(base::read_all(fd.get(), max_bytes));
    if (expected_size >= 0 && static_cast<int64_t>(data.size()) != expected_size) {
        return base::data_loss("blob `{}` in the store is {} bytes, expected {}", digest.str(),
                               data.size(), expected_size);
    }
    Digest actual = Digest::of(digest.algorithm(), data);
    if (actual != digest) {
        return base::data_loss("blob `{}` in the store is corrupt: its data hashes to `{}`",
                               digest.str(), actual.str());
    }
    return data;
}

base::Result<Digest> ContentStore::write_blob(std::string_view data,
                                              const std::optional<Digest>& expected) {
    Digest digest = expected ? Digest::of(expected->algorithm(), data) : Digest::sha256_of(data);
    if (expected && digest != *expected) {
        return base::data_loss("blob `{}`: digest mismatch: the data hashes to `{}`",
                               expected->str(), digest.str());
    }
    if (has(digest)) {
        return digest;
    }
    auto writer = TRY(begin_ingest(digest.str(), digest, static_cast<int64_t>(data.size())));
    if (!writer) {
        return digest;
    }
    if (writer->offset() != 0) {
        // A stale partial of the same blob: start over, the data is here.
        writer->discard();
        writer = TRY(begin_ingest(digest.str(), digest, static_cast<int64_t>(data.size())));
        if (!writer) {
            return digest;
        }
    }
    TRY(writer->write(data));
    TRY(writer->commit(digest, static_cast<int64_t>(data.size())));
    return digest;
}

base::Result<void> ContentStore::verify_blob(const Digest& digest) const {
    auto fd = TRY(open_blob(digest));
    Digester digester(digest.algorithm());
    std::string buffer(kCopyChunk, '\0');
    while (true) {
        ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return base::errno_error("reading blob `{}`", digest.str());
        }
        if (n == 0) {
            break;
        }
        digester.update(buffer.data(), static_cast<size_t>(n));
    }
    Digest actual = digester.digest();
    if (actual != digest) {
        return base::data_loss("blob `{}` in the store is corrupt: its data hashes to `{}`",
                               digest.str(), actual.str());
    }
    return base::ok();
}

base::Result<void> ContentStore::delete_blob(const Digest& digest) {
    if (::unlink(blob_path(digest).c_str()) != 0) {
        if (errno == ENOENT) {
            return not_in_store(digest);
        }
        return base::errno_error("deleting blob `{}`", digest.str());
    }
    return base::ok();
}

base::Result<std::vector<Digest>> ContentStore::list_blobs() const {
    std::vector<Digest> out;
    for (const char* algorithm : {"sha256", "sha512"}) {
        auto names = TRY(list_dir(fmt::format("{}/blobs/{}", m_root, algorithm)));
        for (const auto& name : names) {
            auto digest = Digest::parse(fmt::format("{}:{}", algorithm, name));
            if (digest) {  // stray files (editor backups, …) are not blobs
                out.push_back(digest.release_value());
            }
        }
    }
    return out;
}

// ---------------------------------------------------------------- ingest

namespace {

std::string ingest_dir_name(std::string_view key) {
    return Digest::sha256_of(key).hex();
}

std::string ingest_meta(std::string_view key, const Digest& expected, int64_t size) {
    return fmt::format("{}\n{}\n{}\n", key, expected.str(), size);
}

}  // namespace

base::Result<std::optional<IngestWriter>> ContentStore::begin_ingest(std::string key,
                                                                     const Digest& expected,
                                                                     int64_t expected_size) const {
    if (key.empty() || expected.empty()) {
        return base::invalid_argument("begin_ingest needs a key and an expected digest");
    }
    if (has(expected)) {
        return std::optional<IngestWriter>();
    }
    std::string dir = m_ingest_dir + "/" + ingest_dir_name(key);
    std::string data_path = dir + "/data";
    base::UniqueFd fd;
    // A committer may rmdir our directory between mkdir and open, and a
    // file we locked may have been renamed into blobs/ or discarded while we
    // waited: retry until the locked inode is the one at `data_path`.
    for (int attempt = 0;; ++attempt) {
        if (attempt > 100) {
            return base::unavailable("ingest `{}`: the ingest directory keeps changing", key);
        }
        TRY(base::mkdir_p(dir, 0700));
        auto opened = base::open_file(data_path, O_RDWR | O_CREAT, 0600);
        if (!opened) {
            if (opened.error().kind() == base::ErrorKind::NotFound) {
                continue;
            }
            return opened.release_error();
        }
        fd = opened.release_value();
        TRY(lock_fd(fd.get(), LOCK_EX, data_path));
        if (has(expected)) {
            return std::optional<IngestWriter>();
        }
        struct stat locked {};
        struct stat current {};
        if (fstat(fd.get(), &locked) != 0) {
            return base::errno_error("ingest `{}`", key);
        }
        if (::stat(data_path.c_str(), &current) == 0 && current.st_ino == locked.st_ino &&
            current.st_dev == locked.st_dev) {
            break;
        }
        fd.reset();
    }
    IngestWriter writer;
    writer.m_store_root = m_root;
    writer.m_key = key;
    writer.m_dir = dir;
    writer.m_expected_size = expected_size;
    writer.m_digester = Digester(expected.algorithm());
    std::string meta = ingest_meta(key, expected, expected_size);
    auto st = TRY(base::fstat_fd(fd.get()));
    int64_t existing = st.st_size;
    bool restart =
        read_small(dir + "/ref") != meta || (expected_size >= 0 && existing > expected_size);
    if (restart) {
        if (ftruncate(fd.get(), 0) != 0) {
            return base::errno_error("resetting ingest `{}`", key);
        }
        existing = 0;
        // Written in place without fsync: it is read only by whoever next
        // holds the data file's flock (held now), and a ref lost or torn by
        // a crash only makes that next writer restart from byte 0 — the data
        // is verified at commit either way. Three fsyncs per blob saved.
        auto ref =
            TRY(base::open_file(dir + "/ref", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600));
        TRY(base::write_all(ref.get(), meta));
    }
    // Restore the hash state by re-hashing what is already on disk.
    std::string buffer(kCopyChunk, '\0');
    int64_t position = 0;
    while (position < existing) {
        ssize_t n = pread(fd.get(), buffer.data(),
                          static_cast<size_t>(std::min<int64_t>(kCopyChunk, existing - position)),
                          position);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return base::errno_error("reading ingest `{}`", key);
        }
        if (n == 0) {
            break;
        }
        writer.m_digester.update(buffer.data(), static_cast<size_t>(n));
        position += n;
    }
    if (lseek(fd.get(), position, SEEK_SET) < 0) {
        return base::errno_error("seeking ingest `{}`", key);
    }
    writer.m_offset = position;
    writer.m_writeback_from = position;
    writer.m_fd = std::move(fd);
    return std::optional<IngestWriter>(std::move(writer));
}

int64_t ContentStore::ingest_offset(std::string_view key) const {
    struct stat st {};
    std::string path = m_ingest_dir + "/" + ingest_dir_name(key) + "/data";
    if (::stat(path.c_str(), &st) != 0) {
        return 0;
    }
    return st.st_size;
}

base::Result<std::vector<IngestStatus>> ContentStore::list_ingests() const {
    std::vector<IngestStatus> out;
    for (const auto& name : TRY(list_dir(m_ingest_dir))) {
        IngestStatus status;
        status.dir = m_ingest_dir + "/" + name;
        std::string meta = read_small(status.dir + "/ref");
        status.key = meta.substr(0, meta.find('\n'));
        struct stat st {};
        std::string data = status.dir + "/data";
        if (::stat(data.c_str(), &st) == 0) {
            status.offset = st.st_size;
            status.updated_at = std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec);
            int fd = ::open(data.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
                    status.locked = true;
                }
                ::close(fd);
            }
        } else if (::stat(status.dir.c_str(), &st) == 0) {
            status.updated_at = std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec);
        }
        out.push_back(std::move(status));
    }
    return out;
}

base::Result<std::vector<std::string>> ContentStore::remove_stale_ingests(
    std::chrono::seconds min_age) const {
    std::vector<std::string> removed;
    auto now = std::chrono::system_clock::now();
    for (const auto& status : TRY(list_ingests())) {
        if (status.locked || now - status.updated_at < min_age) {
            continue;
        }
        std::string data = status.dir + "/data";
        base::UniqueFd fd(::open(data.c_str(), O_RDWR | O_CLOEXEC));
        if (fd.valid() && flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
            continue;  // a writer started meanwhile
        }
        TRY(base::remove_all(status.dir));
        removed.push_back(status.key.empty() ? status.dir : status.key);
    }
    return removed;
}

// ---------------------------------------------------------------- refs

base::Result<std::vector<RefRecord>> ContentStore::read_index_locked() const {
    std::vector<RefRecord> refs;
    auto text = base::read_file(m_root + "/index.json", kMaxIndexJsonBytes);
    if (!text) {
        if (text.error().kind() == base::ErrorKind::NotFound) {
            return refs;
        }
        return text.release_error();
    }
    auto json = base::Json::parse(*text, {.max_bytes = kMaxIndexJsonBytes, .max_depth = 64});
    if (!json) {
        return base::data_loss("the store's `{}/index.json` is not valid JSON: {}", m_root,
                               json.error().message());
    }
    const base::Json* manifests = json->find("manifests");
    if (manifests == nullptr || manifests->is_null()) {
        return refs;
    }
    if (!manifests->is_array()) {
        return base::data_loss("the store's `{}/index.json`: `manifests` is not an array", m_root);
    }
    for (size_t i = 0; i < manifests->as_array().size(); ++i) {
        auto descriptor = internal::descriptor_from_json(
            manifests->as_array()[i], fmt::format("index.json manifests[{}]", i));
        if (!descriptor) {
            return base::data_loss("the store's `{}/index.json`: {}", m_root,
                                   descriptor.error().message());
        }
        RefRecord record;
        record.target = descriptor.release_value();
        record.name = record.target.annotation(media_types::kAnnotationRefName);
        record.source = record.target.annotation(media_types::kAnnotationSource);
        record.pulled_at = record.target.annotation(media_types::kAnnotationPulledAt);
        refs.push_back(std::move(record));
    }
    return refs;
}

base::Result<void> ContentStore::write_index_locked(const std::vector<RefRecord>& refs) const {
    base::Json json = base::Json::object();
    json.set("schemaVersion", 2);
    json.set("mediaType", media_types::kOciIndex);
    base::Json manifests = base::Json::array();
    for (const auto& record : refs) {
        Descriptor descriptor = record.target;
        if (!record.name.empty()) {
            descriptor.annotations[std::string(media_types::kAnnotationRefName)] = record.name;
        }
        if (!record.source.empty()) {
            descriptor.annotations[std::string(media_types::kAnnotationSource)] = record.source;
        }
        if (!record.pulled_at.empty()) {
            descriptor.annotations[std::string(media_types::kAnnotationPulledAt)] =
                record.pulled_at;
        }
        manifests.push_back(internal::descriptor_to_json(descriptor));
    }
    json.set("manifests", std::move(manifests));
    return base::atomic_write_file(m_root + "/index.json", json.dump(true) + "\n", 0644);
}

base::Result<std::optional<RefRecord>> ContentStore::get_ref(std::string_view name) const {
    for (auto& record : TRY(read_index_locked())) {
        if (record.name == name) {
            return std::optional<RefRecord>(std::move(record));
        }
    }
    return std::optional<RefRecord>();
}

base::Result<std::vector<RefRecord>> ContentStore::list_refs() const {
    return read_index_locked();
}

base::Result<void> ContentStore::set_ref(RefRecord record) {
    if (record.name.empty()) {
        return base::invalid_argument("a ref needs a name");
    }
    if (record.target.digest.empty() || record.target.media_type.empty()) {
        return base::invalid_argument("ref `{}` needs a target digest and media type", record.name);
    }
    if (record.pulled_at.empty()) {
        record.pulled_at = now_rfc3339();
    }
    auto lock = TRY(lock_file(m_lock_path));
    auto refs = TRY(read_index_locked());
    bool replaced = false;
    for (auto& existing : refs) {
        if (existing.name == record.name) {
            existing = record;
            replaced = true;
        }
    }
    if (!replaced) {
        refs.push_back(std::move(record));
    }
    return write_index_locked(refs);
}

base::Result<bool> ContentStore::remove_ref(std::string_view name) {
    auto lock = TRY(lock_file(m_lock_path));
    auto refs = TRY(read_index_locked());
    auto end = std::remove_if(refs.begin(), refs.end(),
                              [&](const RefRecord& record) { return record.name == name; });
    if (end == refs.end()) {
        return false;
    }
    refs.erase(end, refs.end());
    TRY(write_index_locked(refs));
    return true;
}

base::Result<Descriptor> ContentStore::resolve(const Reference& ref) const {
    if (ref.digest()) {
        const Digest& digest = *ref.digest();
        if (!has(digest)) {
            return base::not_found("not found: {} in the local store (blob `{}` is not cached)",
                                   ref.str(), digest.str());
        }
        // Prefer the recorded descriptor (exact media type from the registry).
        for (const auto& record : TRY(read_index_locked())) {
            if (record.target.digest == digest) {
                Descriptor out = record.target;
                out.annotations.clear();
                return out;
            }
        }
        std::string raw = TRY(read_blob(digest, kMaxManifestBytes));
        Descriptor out;
        out.digest = digest;
        out.size = static_cast<int64_t>(raw.size());
        out.media_type = TRY(detect_manifest_media_type(raw));
        if (out.media_type.empty()) {
            return base::invalid_argument("{}: blob `{}` is not an image manifest or index",
                                          ref.str(), digest.str());
        }
        return out;
    }
    auto record = TRY(get_ref(ref.str()));
    if (!record) {
        return base::not_found("not found: {} in the local store", ref.str());
    }
    Descriptor out = record->target;
    out.annotations.clear();
    return out;
}

// ---------------------------------------------------------------- gc

base::Result<std::vector<Digest>> ContentStore::reachable_blobs() const {
    std::set<Digest> seen;
    std::vector<Descriptor> pending;
    for (const auto& record : TRY(read_index_locked())) {
        pending.push_back(record.target);
    }
    while (!pending.empty()) {
        Descriptor descriptor = std::move(pending.back());
        pending.pop_back();
        if (!seen.insert(descriptor.digest).second) {
            continue;
        }
        bool is_index = media_types::is_index(descriptor.media_type);
        bool is_manifest = media_types::is_manifest(descriptor.media_type);
        if ((!is_index && !is_manifest) || !has(descriptor.digest)) {
            continue;
        }
        auto raw = read_blob(descriptor.digest, kMaxManifestBytes);
        if (!raw) {
            continue;  // a corrupt root keeps what it can; prune never guesses
        }
        if (is_index) {
            auto index = parse_image_index(raw.release_value(), descriptor.media_type);
            if (index) {
                for (const auto& child : index->manifests) {
                    pending.push_back(child);
                }
            }
        } else {
            auto manifest = parse_image_manifest(raw.release_value(), descriptor.media_type);
            if (manifest) {
                seen.insert(manifest->config.digest);
                for (const auto& layer : manifest->layers) {
                    seen.insert(layer.digest);
                }
            }
        }
    }
    return std::vector<Digest>(seen.begin(), seen.end());
}

base::Result<base::UniqueFd> ContentStore::hold_write_lease() const {
    auto fd = TRY(base::open_file(m_data_dir + "/gc.lock", O_RDWR | O_CREAT, 0600));
    TRY(lock_fd(fd.get(), LOCK_SH, "gc.lock"));
    return fd;
}

base::Result<base::UniqueFd> ContentStore::hold_delete_lease() const {
    auto fd = TRY(base::open_file(m_data_dir + "/gc.lock", O_RDWR | O_CREAT, 0600));
    while (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR) {
            continue;
        }
        if (errno == EWOULDBLOCK) {
            return base::unavailable(
                "an image pull or load is in progress; try again when it finishes");
        }
        return base::errno_error("locking `{}/gc.lock`", m_data_dir);
    }
    return fd;
}

base::Result<GcResult> ContentStore::gc(std::chrono::seconds ingest_min_age) {
    GcResult result;
    // No pull/load may be between committing blobs and recording its ref.
    auto lease = TRY(hold_delete_lease());
    // Hold the index lock so no ref is added between marking and sweeping.
    auto lock = TRY(lock_file(m_lock_path));
    auto reachable_list = TRY(reachable_blobs());
    std::set<Digest> reachable(reachable_list.begin(), reachable_list.end());
    for (const auto& digest : TRY(list_blobs())) {
        if (reachable.contains(digest)) {
            continue;
        }
        auto size = blob_size(digest);
        auto deleted = delete_blob(digest);
        if (!deleted && deleted.error().kind() != base::ErrorKind::NotFound) {
            return deleted.release_error();
        }
        result.removed_bytes += size ? *size : 0;
        result.removed_blobs.push_back(digest);
    }
    result.removed_ingests = TRY(remove_stale_ingests(ingest_min_age));
    return result;
}

}  // namespace locald::oci
