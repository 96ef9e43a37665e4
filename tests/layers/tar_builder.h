// tests/layers/tar_builder.h — builds (hostile) layer tars in memory with
// libarchive's writer, independently of locald's own TarWriter, so the
// applier is tested against a second implementation.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace locald::layers::testing {

struct TarEntry {
    enum Type { File, Dir, Symlink, Hardlink, Fifo, CharDev, BlockDev, Socket };
    Type type = File;
    std::string name;
    std::string data;  // file content, or symlink/hardlink target
    mode_t mode = 0644;
    int64_t uid = 0;
    int64_t gid = 0;
    int64_t mtime = 1'600'000'000;
    unsigned major = 0;
    unsigned minor = 0;
    std::map<std::string, std::string> xattrs;
};

inline TarEntry file(std::string name, std::string data, mode_t mode = 0644) {
    return TarEntry{TarEntry::File, std::move(name), std::move(data), mode};
}
inline TarEntry dir(std::string name, mode_t mode = 0755) {
    return TarEntry{TarEntry::Dir, std::move(name), "", mode};
}
inline TarEntry symlink(std::string name, std::string target) {
    return TarEntry{TarEntry::Symlink, std::move(name), std::move(target), 0777};
}
inline TarEntry hardlink(std::string name, std::string target) {
    return TarEntry{TarEntry::Hardlink, std::move(name), std::move(target), 0644};
}
inline TarEntry fifo(std::string name, mode_t mode = 0644) {
    return TarEntry{TarEntry::Fifo, std::move(name), "", mode};
}

enum class TarCompression { None, Gzip, Zstd };

// The tar (pax format) of `entries`, in the given order, compressed.
std::string build_tar(const std::vector<TarEntry>& entries,
                      TarCompression compression = TarCompression::None);

// gzip/zstd of arbitrary bytes (for corrupt-stream tests).
std::string gzip_bytes(const std::string& data);
std::string zstd_bytes(const std::string& data);

std::string sha256_digest(const std::string& data);  // "sha256:…"

}  // namespace locald::layers::testing
