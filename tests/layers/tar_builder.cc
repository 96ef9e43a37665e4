#include "tar_builder.h"

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <stdexcept>

#include "base/sha256.h"

namespace locald::layers::testing {

namespace {
la_ssize_t append(archive*, void* out, const void* data, size_t size) {
    static_cast<std::string*>(out)->append(static_cast<const char*>(data), size);
    return static_cast<la_ssize_t>(size);
}
}  // namespace

std::string build_tar(const std::vector<TarEntry>& entries, TarCompression compression) {
    std::string out;
    archive* ar = archive_write_new();
    archive_write_set_format_pax_restricted(ar);
    if (compression == TarCompression::Gzip) {
        archive_write_add_filter_gzip(ar);
    } else if (compression == TarCompression::Zstd) {
        archive_write_add_filter_zstd(ar);
    }
    archive_write_set_bytes_in_last_block(ar, 1);
    archive_write_open(ar, &out, nullptr, append, nullptr);
    for (const auto& e : entries) {
        archive_entry* entry = archive_entry_new();
        archive_entry_set_pathname(entry, e.name.c_str());
        archive_entry_set_uid(entry, e.uid);
        archive_entry_set_gid(entry, e.gid);
        archive_entry_set_mtime(entry, e.mtime, 0);
        archive_entry_set_perm(entry, e.mode);
        for (const auto& [k, v] : e.xattrs) {
            archive_entry_xattr_add_entry(entry, k.c_str(), v.data(), v.size());
        }
        switch (e.type) {
            case TarEntry::File:
                archive_entry_set_filetype(entry, AE_IFREG);
                archive_entry_set_size(entry, static_cast<la_int64_t>(e.data.size()));
                break;
            case TarEntry::Dir:
                archive_entry_set_filetype(entry, AE_IFDIR);
                break;
            case TarEntry::Symlink:
                archive_entry_set_filetype(entry, AE_IFLNK);
                archive_entry_set_symlink(entry, e.data.c_str());
                break;
            case TarEntry::Hardlink:
                archive_entry_set_filetype(entry, AE_IFREG);
                archive_entry_set_hardlink(entry, e.data.c_str());
                archive_entry_set_size(entry, 0);
                break;
            case TarEntry::Fifo:
                archive_entry_set_filetype(entry, AE_IFIFO);
                break;
            case TarEntry::CharDev:
                archive_entry_set_filetype(entry, AE_IFCHR);
                archive_entry_set_rdevmajor(entry, e.major);
                archive_entry_set_rdevminor(entry, e.minor);
                break;
            case TarEntry::BlockDev:
                archive_entry_set_filetype(entry, AE_IFBLK);
                archive_entry_set_rdevmajor(entry, e.major);
                archive_entry_set_rdevminor(entry, e.minor);
                break;
            case TarEntry::Socket:
                archive_entry_set_filetype(entry, AE_IFSOCK);
                break;
        }
        if (archive_write_header(ar, entry) < ARCHIVE_WARN) {
            throw std::runtime_error(e.name + ": " + archive_error_string(ar));
        }
        if (e.type == TarEntry::File && !e.data.empty()) {
            archive_write_data(ar, e.data.data(), e.data.size());
        }
        archive_entry_free(entry);
    }
    archive_write_close(ar);
    archive_write_free(ar);
    return out;
}

std::string gzip_bytes(const std::string& data) {
    z_stream s{};
    deflateInit2(&s, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    std::string out(deflateBound(&s, data.size()) + 64, '\0');
    s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    s.avail_in = static_cast<uInt>(data.size());
    s.next_out = reinterpret_cast<Bytef*>(out.data());
    s.avail_out = static_cast<uInt>(out.size());
    deflate(&s, Z_FINISH);
    out.resize(s.total_out);
    deflateEnd(&s);
    return out;
}

std::string zstd_bytes(const std::string& data) {
    std::string out(ZSTD_compressBound(data.size()), '\0');
    size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
    out.resize(n);
    return out;
}

std::string sha256_digest(const std::string& data) {
    return "sha256:" + base::sha256_hex(data);
}

}  // namespace locald::layers::testing
