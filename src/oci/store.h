// oci/store.h — the content-addressed store: an OCI image layout on disk.
//
// Layout (readable by skopeo `oci:`, crane, umoci):
//   <data>/store/oci-layout                 {"imageLayoutVersion":"1.0.0"}
//   <data>/store/index.json                 one entry per ref; annotations
//        org.opencontainers.image.ref.name = full ref (docker.io/library/alpine:latest)
//        dev.locald.image.source           = where it was fetched from
//        dev.locald.image.pulled-at        = when (RFC 3339, UTC)
//   <data>/store/blobs/sha256/<hex>         read-only (0444) blobs
//   <data>/ingest/<sha256(key)>/{data,key}  partial downloads (resumable)
//   <data>/store.lock                       serialises index.json updates
//   <data>/gc.lock                          writers (shared) vs gc/rmi (exclusive)
//
// Contract:
// - A blob appears under blobs/ only after: data fsync'd → size and digest
//   verified → rename (atomic) → directory fsync'd. A mismatch is DataLoss
//   naming the blob; nothing of it is kept (the ingest is removed).
// - Ingests are keyed by a caller-chosen key (usually the digest string) and
//   flock'd while open, so two processes (or threads) ingesting the same key
//   never interleave: the second waits, then either finds the blob committed
//   (begin_ingest returns nullopt) or resumes the partial data. Resuming
//   re-hashes the bytes already on disk to restore the hash state.
// - index.json is rewritten atomically (tmp + fsync + rename + fsync dir)
//   under an exclusive flock of store.lock; readers never see half a file.
// - Every method is safe to call from several threads on one ContentStore.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "oci/descriptor.h"
#include "oci/digest.h"
#include "oci/reference.h"

namespace locald::oci {

// One named image in the store (one index.json entry).
struct RefRecord {
    std::string name;       // full normalised ref: docker.io/library/alpine:latest (or @sha256:…)
    Descriptor target;      // manifest or index descriptor (annotations: see above)
    std::string source;     // where it came from: a registry ref, "load:PATH", "tag:SRC"
    std::string pulled_at;  // RFC 3339 UTC
};

class ContentStore;

// A blob being written. Not copyable; movable. Dropping it without commit()
// keeps the partial data for a later resume (closes and unlocks).
class IngestWriter {
public:
    IngestWriter(IngestWriter&&) noexcept;
    IngestWriter& operator=(IngestWriter&&) noexcept;
    IngestWriter(const IngestWriter&) = delete;
    IngestWriter& operator=(const IngestWriter&) = delete;
    ~IngestWriter();

    // Bytes already in the ingest (the resume offset before any write()).
    int64_t offset() const { return m_offset; }
    const std::string& key() const { return m_key; }

    // Appends `data` and hashes it. Writing past the expected size given to
    // begin_ingest is DataLoss (and discards the ingest). Bytes are gathered
    // into 1 MiB writes (libcurl hands over 16 KiB at a time), and written
    // data is handed to the kernel's writeback every 8 MiB so the fsync at
    // commit finds little left to do; dropping the writer flushes what is
    // gathered, so a resume loses nothing.
    base::Result<void> write(std::string_view data);
    // fsync → verify size and digest → rename into blobs/ → fsync dir.
    // AlreadyExists never happens: if the blob appeared meanwhile the ingest
    // is dropped and commit succeeds. On mismatch: DataLoss, ingest removed.
    base::Result<void> commit(const Digest& expected, int64_t expected_size);
    // Removes the partial data now (nothing to resume).
    void discard();

private:
    friend class ContentStore;
    IngestWriter() = default;
    base::Result<void> flush();
    base::Result<void> write_out(std::string_view bytes);  // write(2) + writeback hint
    std::string m_store_root;  // <data>/store (a path, so the store object may move)
    std::string m_key;
    std::string m_dir;             // <data>/ingest/<sha256(key)>
    base::UniqueFd m_fd;           // data file, flock'd exclusively
    int64_t m_offset = 0;          // bytes accepted (on disk + m_pending)
    int64_t m_writeback_from = 0;  // first byte not yet handed to writeback
    std::string m_pending;         // accepted, not yet written (< 1 MiB)
    int64_t m_expected_size = -1;  // -1 = unknown
    Digester m_digester;
    bool m_done = false;
};

struct IngestStatus {
    std::string key;
    std::string dir;
    int64_t offset = 0;
    std::chrono::system_clock::time_point updated_at;
    bool locked = false;  // someone is writing it right now
};

struct GcResult {
    std::vector<Digest> removed_blobs;
    int64_t removed_bytes = 0;
    std::vector<std::string> removed_ingests;  // keys
};

class ContentStore {
public:
    // Opens (creating if needed, 0700) `<data_dir>/store` and `<data_dir>/ingest`.
    static base::Result<ContentStore> open(std::string data_dir);
    // Opens the store under locald's data dir ($LOCALD_HOME/data or
    // $XDG_DATA_HOME/locald or ~/.local/share/locald).
    static base::Result<ContentStore> open_default();
    // The data dir open_default() uses.
    static base::Result<std::string> default_data_dir();

    const std::string& data_dir() const { return m_data_dir; }
    const std::string& root() const { return m_root; }  // <data>/store
    std::string blob_path(const Digest& digest) const;

    // ---- blobs
    bool has(const Digest& digest) const;
    // Size on disk, NotFound when absent.
    base::Result<int64_t> blob_size(const Digest& digest) const;
    // Opens a blob for reading (O_RDONLY|O_CLOEXEC). NotFound names the blob.
    base::Result<base::UniqueFd> open_blob(const Digest& digest) const;
    // Reads a whole blob (at most max_bytes, else DataLoss), verifying its
    // digest (and `expected_size` when >= 0).
    base::Result<std::string> read_blob(const Digest& digest, size_t max_bytes,
                                        int64_t expected_size = -1) const;
    // Writes a small in-memory blob (returns its sha256 digest). Verifies
    // against `expected` when given.
    base::Result<Digest> write_blob(std::string_view data,
                                    const std::optional<Digest>& expected = std::nullopt);
    // Re-hashes a blob on disk; DataLoss if it no longer matches.
    base::Result<void> verify_blob(const Digest& digest) const;
    base::Result<void> delete_blob(const Digest& digest);
    base::Result<std::vector<Digest>> list_blobs() const;

    // ---- ingest
    // Opens (or resumes) the ingest for `key`, waiting for another writer of
    // the same key to finish. Returns nullopt when `expected` is already in
    // the store (checked before and after taking the lock). `expected_size`
    // (or -1) bounds writes; a partial larger than it is restarted.
    base::Result<std::optional<IngestWriter>> begin_ingest(std::string key, const Digest& expected,
                                                           int64_t expected_size = -1) const;
    // Bytes held by the partial ingest for `key` (0 when none).
    int64_t ingest_offset(std::string_view key) const;
    base::Result<std::vector<IngestStatus>> list_ingests() const;
    // Removes ingests not locked by a writer and untouched for `min_age`.
    base::Result<std::vector<std::string>> remove_stale_ingests(std::chrono::seconds min_age) const;

    // ---- refs (index.json)
    base::Result<std::optional<RefRecord>> get_ref(std::string_view name) const;
    base::Result<std::vector<RefRecord>> list_refs() const;
    // Adds or replaces the entry with the same name. `record.pulled_at` is set
    // to now when empty.
    base::Result<void> set_ref(RefRecord record);
    // false when no such ref.
    base::Result<bool> remove_ref(std::string_view name);

    // Offline resolution: a digest ref resolves when the blob is present (its
    // media type detected from the body); a tag ref from index.json. NotFound:
    // "not found: REF in the local store".
    base::Result<Descriptor> resolve(const Reference& ref) const;

    // Removes every blob not reachable from a ref (index → manifests →
    // config + layers; subjects are not followed) and ingests older than
    // `ingest_min_age` not being written.
    base::Result<GcResult> gc(std::chrono::seconds ingest_min_age = std::chrono::hours(24));
    // The reachable set (what gc keeps).
    base::Result<std::vector<Digest>> reachable_blobs() const;

    // Blobs committed by a pull or load are unreferenced until its final
    // set_ref(). Writers hold a shared lease for the whole operation; gc()
    // and the blob deletion of `rmi` take it exclusively and refuse
    // (Unavailable, "an image pull or load is in progress") while any
    // writer holds it. Dropping the fd releases it.
    base::Result<base::UniqueFd> hold_write_lease() const;
    // Non-blocking exclusive lease for deleters.
    base::Result<base::UniqueFd> hold_delete_lease() const;

private:
    friend class IngestWriter;
    ContentStore() = default;
    base::Result<std::vector<RefRecord>> read_index_locked() const;
    base::Result<void> write_index_locked(const std::vector<RefRecord>& refs) const;

    std::string m_data_dir;
    std::string m_root;
    std::string m_ingest_dir;
    std::string m_lock_path;
};

// "2026-11-26T07:15:00Z"
std::string now_rfc3339();

}  // namespace locald::oci
