#include "layers/tar_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "base/sha256.h"
#include "base/sys.h"
#include "base/unique_fd.h"
#include "layers/internal/fs_util.h"
#include "layers/layer_applier.h"

namespace locald::layers {

namespace {

using base::Result;
using base::UniqueFd;

// Compresses and hashes what libarchive writes, then writes it to the fd.
class Sink {
public:
    Sink(int fd, Compression compression, int level) : m_fd(fd), m_compression(compression) {
        if (compression == Compression::Gzip) {
            std::memset(&m_zlib, 0, sizeof(m_zlib));
            // 16 + MAX_WBITS: a gzip wrapper with mtime 0 and no name.
            m_ok = deflateInit2(&m_zlib, level < 0 ? Z_DEFAULT_COMPRESSION : level, Z_DEFLATED,
                                16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK;
        } else if (compression == Compression::Zstd) {
            m_zstd = ZSTD_createCCtx();
            m_ok = m_zstd != nullptr;
            if (m_ok) {
                ZSTD_CCtx_setParameter(m_zstd, ZSTD_c_compressionLevel, level < 0 ? 3 : level);
                ZSTD_CCtx_setParameter(m_zstd, ZSTD_c_checksumFlag, 1);
            }
        }
        m_out.resize(1 << 18);
    }
    ~Sink() {
        if (m_compression == Compression::Gzip && m_ok) {
            deflateEnd(&m_zlib);
        }
        if (m_zstd) {
            ZSTD_freeCCtx(m_zstd);
        }
    }
    Result<void> write(const char* data, size_t size, bool finish);
    base::Sha256 diff_hash;
    base::Sha256 blob_hash;
    uint64_t written = 0;
    Result<void> error = base::ok();

private:
    Result<void> emit(const char* data, size_t size) {
        blob_hash.update(data, size);
        written += size;
        return base::write_all(m_fd, std::string_view(data, size));
    }
    int m_fd;
    Compression m_compression;
    bool m_ok = true;
    z_stream m_zlib;
    ZSTD_CCtx* m_zstd = nullptr;
    std::vector<char> m_out;
};

Result<void> Sink::write(const char* data, size_t size, bool finish) {
    if (!m_ok) {
        return base::internal_error("compressor initialisation failed");
    }
    diff_hash.update(data, size);
    if (m_compression == Compression::None) {
        return emit(data, size);
    }
    if (m_compression == Compression::Gzip) {
        m_zlib.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
        m_zlib.avail_in = static_cast<uInt>(size);
        while (true) {
            m_zlib.next_out = reinterpret_cast<Bytef*>(m_out.data());
            m_zlib.avail_out = static_cast<uInt>(m_out.size());
            int rc = deflate(&m_zlib, finish ? Z_FINISH : Z_NO_FLUSH);
            if (rc == Z_STREAM_ERROR) {
                return base::internal_error("gzip compression failed");
            }
            TRY(emit(m_out.data(), m_out.size() - m_zlib.avail_out));
            if (finish ? rc == Z_STREAM_END : (m_zlib.avail_in == 0 && m_zlib.avail_out != 0)) {
                return base::ok();
            }
        }
    }
    ZSTD_inBuffer in{data, size, 0};
    while (true) {
        ZSTD_outBuffer out{m_out.data(), m_out.size(), 0};
        size_t rc = ZSTD_compressStream2(m_zstd, &out, &in, finish ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(rc)) {
            return base::internal_error("zstd compression failed: {}", ZSTD_getErrorName(rc));
        }
        TRY(emit(m_out.data(), out.pos));
        if (finish ? rc == 0 : in.pos == in.size) {
            return base::ok();
        }
    }
}

la_ssize_t sink_write(archive*, void* opaque, const void* data, size_t size) {
    auto* sink = static_cast<Sink*>(opaque);
    auto r = sink->write(static_cast<const char*>(data), size, false);
    if (!r) {
        sink->error = std::move(r);
        return -1;
    }
    return static_cast<la_ssize_t>(size);
}

bool allowed_xattr(std::string_view name) {
    if (name.starts_with("user.")) {
        return !name.starts_with("user.overlay.");
    }
    return name == "security.capability";
}

class Walker {
public:
    Walker(archive* ar, const TarWriterOptions& options, int64_t epoch)
        : m_ar(ar), m_options(options), m_epoch(epoch) {}
    Result<void> walk(int dir_fd, const std::string& rel);
    uint64_t entries = 0;

private:
    Result<void> add(int dir_fd, const std::string& name, const std::string& rel,
                     const struct stat& st);
    archive* m_ar;
    const TarWriterOptions& m_options;
    int64_t m_epoch;
    std::map<std::pair<dev_t, ino_t>, std::string> m_links;
};

Result<void> Walker::add(int dir_fd, const std::string& name, const std::string& rel,
                         const struct stat& st) {
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> entry(archive_entry_new(),
                                                                   archive_entry_free);
    std::string entry_name = m_options.prefix + rel + (S_ISDIR(st.st_mode) ? "/" : "");
    archive_entry_set_pathname(entry.get(), entry_name.c_str());
    archive_entry_set_mtime(entry.get(), m_epoch, 0);
    uint32_t uid = m_options.owners_from_rootless_xattr ? 0 : st.st_uid;
    uint32_t gid = m_options.owners_from_rootless_xattr ? 0 : st.st_gid;
    archive_entry_set_perm(entry.get(), st.st_mode & 07777);
    UniqueFd fd;
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
        fd = TRY(base::open_at(dir_fd, name,
                               O_RDONLY | O_NOFOLLOW | (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0)));
        char names[16384];
        ssize_t n = flistxattr(fd.get(), names, sizeof(names));
        std::vector<std::string> keys;
        for (ssize_t i = 0; i < n;) {
            std::string key(names + i);
            i += static_cast<ssize_t>(key.size()) + 1;
            if (key == kRootlessXattr && m_options.owners_from_rootless_xattr) {
                char value[64];
                ssize_t len = fgetxattr(fd.get(), key.c_str(), value, sizeof(value));
                auto ids = decode_rootless_xattr(
                    std::string_view(value, len > 0 ? static_cast<size_t>(len) : 0));
                if (ids) {
                    uid = ids->first;
                    gid = ids->second;
                }
                continue;
            }
            if (allowed_xattr(key)) {
                keys.push_back(key);
            }
        }
        std::sort(keys.begin(), keys.end());
        for (const auto& key : keys) {
            char value[65536];
            ssize_t len = fgetxattr(fd.get(), key.c_str(), value, sizeof(value));
            if (len >= 0) {
                archive_entry_xattr_add_entry(entry.get(), key.c_str(), value,
                                              static_cast<size_t>(len));
            }
        }
    }
    archive_entry_set_uid(entry.get(), m_options.uid ? *m_options.uid : uid);
    archive_entry_set_gid(entry.get(), m_options.gid ? *m_options.gid : gid);
    bool data = false;
    if (S_ISREG(st.st_mode)) {
        auto key = std::make_pair(st.st_dev, st.st_ino);
        auto it = st.st_nlink > 1 ? m_links.find(key) : m_links.end();
        archive_entry_set_filetype(entry.get(), AE_IFREG);
        if (it != m_links.end()) {
            archive_entry_set_hardlink(entry.get(), (m_options.prefix + it->second).c_str());
            archive_entry_set_size(entry.get(), 0);
        } else {
            archive_entry_set_size(entry.get(), st.st_size);
            data = true;
            if (st.st_nlink > 1) {
                m_links[key] = rel;
            }
        }
    } else if (S_ISDIR(st.st_mode)) {
        archive_entry_set_filetype(entry.get(), AE_IFDIR);
    } else if (S_ISLNK(st.st_mode)) {
        archive_entry_set_filetype(entry.get(), AE_IFLNK);
        std::string target = TRY(base::read_link_at(dir_fd, name));
        archive_entry_set_symlink(entry.get(), target.c_str());
    } else if (S_ISFIFO(st.st_mode)) {
        archive_entry_set_filetype(entry.get(), AE_IFIFO);
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        archive_entry_set_filetype(entry.get(), S_ISCHR(st.st_mode) ? AE_IFCHR : AE_IFBLK);
        archive_entry_set_rdevmajor(entry.get(), major(st.st_rdev));
        archive_entry_set_rdevminor(entry.get(), minor(st.st_rdev));
    } else {
        return base::ok();  // sockets
    }
    if (archive_write_header(m_ar, entry.get()) < ARCHIVE_WARN) {
        return base::internal_error("writing the tar header of `{}`: {}", rel,
                                    archive_error_string(m_ar) ? archive_error_string(m_ar) : "?");
    }
    entries++;
    if (data) {
        char buffer[1 << 16];
        int64_t remaining = st.st_size;
        while (remaining > 0) {
            ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                return base::errno_error("reading `{}`", rel);
            }
            if (n == 0) {
                return base::data_loss("`{}` shrank while being archived", rel);
            }
            n = std::min<ssize_t>(n, remaining);
            if (archive_write_data(m_ar, buffer, static_cast<size_t>(n)) != n) {
                return base::internal_error("writing the data of `{}`", rel);
            }
            remaining -= n;
        }
    }
    return base::ok();
}

Result<void> Walker::walk(int dir_fd, const std::string& rel) {
    for (const auto& name : TRY(internal::list_dir(dir_fd))) {
        std::string crel = rel.empty() ? name : rel + "/" + name;
        struct stat st;
        if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            return base::errno_error("inspecting `{}`", crel);
        }
        TRY(add(dir_fd, name, crel, st));
        if (S_ISDIR(st.st_mode)) {
            UniqueFd child = TRY(base::open_at(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
            TRY(walk(child.get(), crel));
        }
    }
    return base::ok();
}

}  // namespace

base::Result<TarWriteResult> write_layer_from_dir(const std::string& dir, int out_fd,
                                                  const TarWriterOptions& options) {
    int64_t epoch = 0;
    if (options.source_date) {
        epoch = *options.source_date;
    } else if (const char* env = std::getenv("SOURCE_DATE_EPOCH"); env && *env) {
        char* end = nullptr;
        long long value = std::strtoll(env, &end, 10);
        if (*end != '\0' || value < 0) {
            return base::invalid_argument("SOURCE_DATE_EPOCH `{}` is not a non-negative integer",
                                          env);
        }
        epoch = value;
    }
    Sink sink(out_fd, options.compression, options.level);
    std::unique_ptr<archive, int (*)(archive*)> ar(archive_write_new(), archive_write_free);
    archive_write_set_format_pax_restricted(ar.get());
    archive_write_add_filter_none(ar.get());
    archive_write_set_bytes_per_block(ar.get(), 512);
    archive_write_set_bytes_in_last_block(ar.get(), 1);
    if (archive_write_open(ar.get(), &sink, nullptr, sink_write, nullptr) != ARCHIVE_OK) {
        return base::internal_error("opening the tar writer");
    }
    UniqueFd root = TRY(base::open_file(dir, O_RDONLY | O_DIRECTORY));
    Walker walker(ar.get(), options, epoch);
    auto walked = walker.walk(root.get(), "");
    if (!sink.error) {
        return sink.error.release_error();
    }
    TRY(std::move(walked));
    if (archive_write_close(ar.get()) != ARCHIVE_OK) {
        if (!sink.error) {
            return sink.error.release_error();
        }
        return base::internal_error("finishing the tar");
    }
    TRY(sink.write(nullptr, 0, true));
    TarWriteResult result;
    result.diff_id = "sha256:" + sink.diff_hash.hex_digest();
    result.digest = "sha256:" + sink.blob_hash.hex_digest();
    result.size = sink.written;
    result.uncompressed_size = sink.diff_hash.size();
    result.entries = walker.entries;
    return result;
}

}  // namespace locald::layers
