// fuzz/layer_entries_fuzz.cc — well-formed layers built from a structured
// description, so coverage guides the applier's own logic (entry-name
// cleaning, whiteouts, opaque dirs, hardlinks, symlinks in parents,
// replacement of existing paths, deferred directory modes, xattrs, owners)
// instead of libarchive's header parsing (layer_fuzz covers raw bytes).
//
// Input: one entry per line, `T PATH` or `T PATH -> ARG`, where T is
//   f file (ARG = content)     d dir 0755        D dir 0000
//   l symlink (ARG = target)   h hardlink (ARG)  p fifo
//   c char device              s socket          x file with xattr (ARG = `name=value`)
//   u file owned by 1000:1000 (ARG = content)
// Unknown T bytes are skipped. The tar is PAX (libarchive's writer) and goes
// through layer_common.h's apply_everywhere().
#include <archive.h>
#include <archive_entry.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "layer_common.h"

namespace {

std::string build_tar(std::string_view text) {
    std::string out;
    std::unique_ptr<archive, int (*)(archive*)> ar(archive_write_new(), archive_write_free);
    archive_write_set_format_pax(ar.get());
    archive_write_set_bytes_per_block(ar.get(), 0);
    archive_write_open(
        ar.get(), &out, nullptr,
        [](archive*, void* opaque, const void* buffer, size_t length) -> la_ssize_t {
            static_cast<std::string*>(opaque)->append(static_cast<const char*>(buffer), length);
            return static_cast<la_ssize_t>(length);
        },
        nullptr);
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        if (line.size() < 3 || line[1] != ' ') {
            continue;
        }
        char type = line[0];
        std::string_view rest = line.substr(2);
        std::string_view path = rest;
        std::string_view arg;
        if (auto arrow = rest.find(" -> "); arrow != std::string_view::npos) {
            path = rest.substr(0, arrow);
            arg = rest.substr(arrow + 4);
        }
        std::unique_ptr<archive_entry, void (*)(archive_entry*)> entry(archive_entry_new(),
                                                                       archive_entry_free);
        archive_entry_copy_pathname(entry.get(), std::string(path).c_str());
        archive_entry_set_mtime(entry.get(), 1700000000, 0);
        archive_entry_set_perm(entry.get(), 0644);
        std::string data;
        switch (type) {
            case 'u':
                archive_entry_set_uid(entry.get(), 1000);
                archive_entry_set_gid(entry.get(), 1000);
                [[fallthrough]];
            case 'f':
                archive_entry_set_filetype(entry.get(), AE_IFREG);
                data = arg;
                break;
            case 'x': {
                archive_entry_set_filetype(entry.get(), AE_IFREG);
                auto eq = arg.find('=');
                std::string name(arg.substr(0, eq));
                std::string value(eq == std::string_view::npos ? "" : arg.substr(eq + 1));
                archive_entry_xattr_add_entry(entry.get(), name.c_str(), value.data(),
                                              value.size());
                break;
            }
            case 'd':
            case 'D':
                archive_entry_set_filetype(entry.get(), AE_IFDIR);
                archive_entry_set_perm(entry.get(), type == 'd' ? 0755 : 0);
                break;
            case 'l':
                archive_entry_set_filetype(entry.get(), AE_IFLNK);
                archive_entry_copy_symlink(entry.get(), std::string(arg).c_str());
                break;
            case 'h':
                archive_entry_set_filetype(entry.get(), AE_IFREG);
                archive_entry_copy_hardlink(entry.get(), std::string(arg).c_str());
                break;
            case 'p':
                archive_entry_set_filetype(entry.get(), AE_IFIFO);
                break;
            case 'c':
                archive_entry_set_filetype(entry.get(), AE_IFCHR);
                archive_entry_set_rdev(entry.get(), 0);
                break;
            case 's':
                archive_entry_set_filetype(entry.get(), AE_IFSOCK);
                break;
            default:
                continue;
        }
        archive_entry_set_size(entry.get(), static_cast<la_int64_t>(data.size()));
        if (archive_write_header(ar.get(), entry.get()) != ARCHIVE_OK) {
            continue;
        }
        if (!data.empty()) {
            archive_write_data(ar.get(), data.data(), data.size());
        }
    }
    archive_write_close(ar.get());
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string tar = build_tar(std::string_view(reinterpret_cast<const char*>(data), size));
    locald_fuzz::apply_everywhere(tar);
    return 0;
}
