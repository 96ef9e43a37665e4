#include "daemon/internal/build_id.h"

#include <elf.h>
#include <link.h>
#include <sys/stat.h>

#include <cstring>

#include <fmt/format.h>

namespace locald::daemon::internal {

namespace {

int find_note(dl_phdr_info* info, size_t, void* data) {
    // The first object is the executable itself.
    auto* out = static_cast<std::string*>(data);
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const auto& header = info->dlpi_phdr[i];
        if (header.p_type != PT_NOTE) {
            continue;
        }
        const char* cursor = reinterpret_cast<const char*>(info->dlpi_addr + header.p_vaddr);
        const char* end = cursor + header.p_memsz;
        while (cursor + sizeof(ElfW(Nhdr)) <= end) {
            ElfW(Nhdr) note;
            std::memcpy(&note, cursor, sizeof(note));
            const char* name = cursor + sizeof(note);
            const char* desc = name + ((note.n_namesz + 3) & ~3u);
            if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 &&
                std::memcmp(name, "GNU", 4) == 0 && desc + note.n_descsz <= end) {
                for (size_t j = 0; j < note.n_descsz; ++j) {
                    *out += fmt::format("{:02x}", static_cast<unsigned char>(desc[j]));
                }
                return 1;
            }
            cursor = desc + ((note.n_descsz + 3) & ~3u);
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
    struct stat st {};
    if (::stat("/proc/self/exe", &st) == 0) {
        return fmt::format("exe-{:x}-{:x}-{:x}", static_cast<unsigned long>(st.st_size),
                           static_cast<unsigned long>(st.st_mtim.tv_sec),
                           static_cast<unsigned long>(st.st_mtim.tv_nsec));
    }
    return "unknown";
}

}  // namespace

const std::string& build_id() {
    static const std::string id = compute();
    return id;
}

}  // namespace locald::daemon::internal
