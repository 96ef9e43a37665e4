#include "daemon/internal/build_id.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace locald::daemon::internal {

namespace {

// Longest build id taken (GNU ld's are 20 bytes for sha1, 16 for md5/uuid).
constexpr size_t kMaxBuildIdBytes = 64;

// The hex of the first GNU build-id note in the `size` bytes at `notes`
// (one PT_NOTE segment, entries padded to `align`), or "". Every header
// field is bounded against the bytes left before it is used: no pointer is
// formed beyond the segment, and n_namesz/n_descsz near 2^32 cannot wrap
// when padded (they are widened first). A malformed note ends the scan —
// what follows it cannot be located.
std::string note_id(const char* notes, size_t size, size_t align) {
    if (align != 8) {
        align = 4;  // 0, 1 and 4 all mean 4-byte padding in practice
    }
    // Offsets in 64 bits: a 32-bit size added to an offset below 64 KiB (or
    // a mapped segment's size) cannot wrap. Padding is of the offset from
    // the segment's start (itself aligned), as glibc's ELF_NOTE_NEXT_OFFSET.
    auto padded = [align](uint64_t n) { return (n + align - 1) & ~uint64_t(align - 1); };
    uint64_t offset = 0;
    while (size - offset >= sizeof(ElfW(Nhdr))) {
        ElfW(Nhdr) note;
        std::memcpy(&note, notes + offset, sizeof(note));
        const uint64_t name = offset + sizeof(note);
        const uint64_t desc = padded(name + note.n_namesz);
        if (desc > size || note.n_descsz > size - desc) {
            break;
        }
        if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 &&
            std::memcmp(notes + name, "GNU", 4) == 0 && note.n_descsz > 0 &&
            note.n_descsz <= kMaxBuildIdBytes) {
            std::string out;
            for (size_t j = 0; j < note.n_descsz; ++j) {
                out += fmt::format("{:02x}", static_cast<unsigned char>(notes[desc + j]));
            }
            return out;
        }
        // The last entry's padding may be cut off at the segment's end.
        offset = std::min<uint64_t>(padded(desc + note.n_descsz), size);
    }
    return "";
}

std::string stat_id(const char* path) {
    struct stat st {};
    if (::stat(path, &st) == 0) {
        return fmt::format("exe-{:x}-{:x}-{:x}", static_cast<unsigned long>(st.st_size),
                           static_cast<unsigned long>(st.st_mtim.tv_sec),
                           static_cast<unsigned long>(st.st_mtim.tv_nsec));
    }
    return "";
}

int find_note(dl_phdr_info* info, size_t, void* data) {
    // The first object is the executable itself.
    auto* out = static_cast<std::string*>(data);
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const auto& header = info->dlpi_phdr[i];
        if (header.p_type != PT_NOTE) {
            continue;
        }
        const char* notes = reinterpret_cast<const char*>(info->dlpi_addr + header.p_vaddr);
        *out = note_id(notes, header.p_memsz, header.p_align);
        if (!out->empty()) {
            return 1;
        }
    }
    return 1;  // only the executable, never the shared libraries
}

std::string compute() {
    std::string id;
    dl_iterate_phdr(find_note, &id);
    if (!id.empty()) {
        return id;
    }
    id = stat_id("/proc/self/exe");
    return id.empty() ? "unknown" : id;
}

bool read_at(int fd, void* buffer, size_t size, off_t offset) {
    size_t done = 0;
    while (done < size) {
        ssize_t n = ::pread(fd, static_cast<char*>(buffer) + done, size - done,
                            offset + static_cast<off_t>(done));
        if (n <= 0) {
            return false;
        }
        done += static_cast<size_t>(n);
    }
    return true;
}

std::string file_note_id(int fd) {
    // Every offset and size from the file is checked against its length
    // before it is read (or added: off_t is signed).
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        return "";
    }
    const uint64_t file_size = static_cast<uint64_t>(st.st_size);
    auto inside = [file_size](uint64_t offset, uint64_t size) {
        return offset <= file_size && size <= file_size - offset;
    };
    ElfW(Ehdr) header;
    if (!read_at(fd, &header, sizeof(header), 0) ||
        std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 ||
        header.e_ident[EI_CLASS] != (sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32) ||
        header.e_phentsize != sizeof(ElfW(Phdr)) || header.e_phnum > 256) {
        return "";
    }
    std::vector<ElfW(Phdr)> phdrs(header.e_phnum);
    if (!inside(header.e_phoff, phdrs.size() * sizeof(ElfW(Phdr))) ||
        !read_at(fd, phdrs.data(), phdrs.size() * sizeof(ElfW(Phdr)),
                 static_cast<off_t>(header.e_phoff))) {
        return "";
    }
    for (const auto& ph : phdrs) {
        if (ph.p_type != PT_NOTE || ph.p_filesz == 0 || ph.p_filesz > (1u << 16) ||
            !inside(ph.p_offset, ph.p_filesz)) {
            continue;
        }
        std::vector<char> notes(ph.p_filesz);
        if (!read_at(fd, notes.data(), notes.size(), static_cast<off_t>(ph.p_offset))) {
            return "";
        }
        std::string id = note_id(notes.data(), notes.size(), ph.p_align);
        if (!id.empty()) {
            return id;
        }
    }
    return "";
}

}  // namespace

const std::string& build_id() {
    static const std::string id = compute();
    return id;
}

std::string build_id_of_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return "";
    }
    std::string id = file_note_id(fd);
    ::close(fd);
    return id.empty() ? stat_id(path.c_str()) : id;
}

}  // namespace locald::daemon::internal
