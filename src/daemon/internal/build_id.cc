#include "daemon/internal/build_id.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace locald::daemon::internal {

namespace {

// The hex of the first GNU build-id note in [cursor, end), or "".
std::string note_id(const char* cursor, const char* end) {
    std::string out;
    while (cursor + sizeof(ElfW(Nhdr)) <= end) {
        ElfW(Nhdr) note;
        std::memcpy(&note, cursor, sizeof(note));
        const char* name = cursor + sizeof(note);
        const char* desc = name + ((note.n_namesz + 3) & ~3u);
        if (desc > end) {
            break;
        }
        if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 &&
            std::memcmp(name, "GNU", 4) == 0 && note.n_descsz <= size_t(end - desc)) {
            for (size_t j = 0; j < note.n_descsz; ++j) {
                out += fmt::format("{:02x}", static_cast<unsigned char>(desc[j]));
            }
            return out;
        }
        size_t skip = (note.n_descsz + 3) & ~3u;
        if (skip > size_t(end - desc)) {
            break;
        }
        cursor = desc + skip;
    }
    return out;
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
        const char* cursor = reinterpret_cast<const char*>(info->dlpi_addr + header.p_vaddr);
        *out = note_id(cursor, cursor + header.p_memsz);
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
    ElfW(Ehdr) header;
    if (!read_at(fd, &header, sizeof(header), 0) ||
        std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 ||
        header.e_phentsize != sizeof(ElfW(Phdr)) || header.e_phnum > 256) {
        return "";
    }
    std::vector<ElfW(Phdr)> phdrs(header.e_phnum);
    if (!read_at(fd, phdrs.data(), phdrs.size() * sizeof(ElfW(Phdr)),
                 static_cast<off_t>(header.e_phoff))) {
        return "";
    }
    for (const auto& ph : phdrs) {
        if (ph.p_type != PT_NOTE || ph.p_filesz == 0 || ph.p_filesz > (1u << 16)) {
            continue;
        }
        std::vector<char> notes(ph.p_filesz);
        if (!read_at(fd, notes.data(), notes.size(), static_cast<off_t>(ph.p_offset))) {
            return "";
        }
        std::string id = note_id(notes.data(), notes.data() + notes.size());
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
