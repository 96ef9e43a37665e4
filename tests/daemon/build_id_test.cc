// Tests for daemon/internal/build_id.h on crafted ELF files: the GNU
// build-id note is found (with 4- and 8-byte note padding), and note sizes
// that run past the segment — including n_namesz/n_descsz that wrap to 0
// when padded in 32 bits — end the scan instead of being trusted (the file
// then gets the size/mtime id). Truncated copies of a real binary and
// random note bytes never yield a partial id (run under
// -fsanitize=address,undefined, they read nothing out of bounds).
#include "daemon/internal/build_id.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace locald::daemon::internal {
namespace {

struct TempFile {
    std::string path;
    TempFile() {
        char pattern[] = "/tmp/build-id-test-XXXXXX";
        int fd = ::mkstemp(pattern);
        path = pattern;
        ::close(fd);
    }
    ~TempFile() { ::unlink(path.c_str()); }
    void write(const std::vector<char>& bytes) const {
        int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
        ::close(fd);
    }
};

void append(std::vector<char>& out, const void* data, size_t size) {
    const char* p = static_cast<const char*>(data);
    out.insert(out.end(), p, p + size);
}

// One note: header, name (NUL included in `namesz` by the caller), padding.
std::vector<char> note(uint32_t namesz, uint32_t descsz, uint32_t type, const std::string& name,
                       const std::vector<char>& desc, size_t align = 4) {
    std::vector<char> out;
    ElfW(Nhdr) header{namesz, descsz, type};
    append(out, &header, sizeof header);
    append(out, name.data(), name.size());
    while (out.size() % align != 0) {
        out.push_back(0);
    }
    append(out, desc.data(), desc.size());
    while (out.size() % align != 0) {
        out.push_back(0);
    }
    return out;
}

std::vector<char> gnu_id(const std::vector<char>& id, size_t align = 4) {
    return note(4, static_cast<uint32_t>(id.size()), NT_GNU_BUILD_ID, std::string("GNU\0", 4), id,
                align);
}

// A native-class ELF file whose one program header is a PT_NOTE over `notes`.
std::vector<char> elf_with_notes(const std::vector<char>& notes, uint64_t align = 4) {
    ElfW(Ehdr) eh;
    std::memset(&eh, 0, sizeof eh);
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_version = EV_CURRENT;
    eh.e_phoff = sizeof eh;
    eh.e_ehsize = sizeof eh;
    eh.e_phentsize = sizeof(ElfW(Phdr));
    eh.e_phnum = 1;
    ElfW(Phdr) ph;
    std::memset(&ph, 0, sizeof ph);
    ph.p_type = PT_NOTE;
    ph.p_offset = sizeof eh + sizeof ph;
    ph.p_filesz = notes.size();
    ph.p_memsz = notes.size();
    ph.p_align = align;
    std::vector<char> out;
    append(out, &eh, sizeof eh);
    append(out, &ph, sizeof ph);
    append(out, notes.data(), notes.size());
    return out;
}

std::vector<char> twenty_bytes() {
    std::vector<char> id;
    for (int i = 0; i < 20; ++i) {
        id.push_back(static_cast<char>(0xa0 + i));
    }
    return id;
}

const char* kTwentyHex = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3";

std::string id_of(const std::vector<char>& bytes) {
    TempFile file;
    file.write(bytes);
    return build_id_of_file(file.path);
}

bool is_stat_id(const std::string& id) {
    return id.rfind("exe-", 0) == 0;
}

TEST(BuildId, AGnuBuildIdNoteIsReadAfterOtherNotes) {
    std::vector<char> notes =
        note(4, 16, NT_GNU_ABI_TAG, std::string("GNU\0", 4), std::vector<char>(16, 1));
    auto id = gnu_id(twenty_bytes());
    notes.insert(notes.end(), id.begin(), id.end());
    EXPECT_EQ(id_of(elf_with_notes(notes)), kTwentyHex);
}

TEST(BuildId, NotesInAnEightByteAlignedSegmentArePaddedToEight) {
    // A 4-byte descriptor padded to 8, then the id: read with 4-byte
    // padding, the second note would be looked for 4 bytes too early.
    std::vector<char> notes = note(4, 4, 5 /* NT_GNU_PROPERTY_TYPE_0 */, std::string("GNU\0", 4),
                                   std::vector<char>(4, 7), 8);
    auto id = gnu_id(twenty_bytes(), 8);
    notes.insert(notes.end(), id.begin(), id.end());
    EXPECT_EQ(id_of(elf_with_notes(notes, 8)), kTwentyHex);
}

TEST(BuildId, ANameSizeThatWrapsWhenPaddedEndsTheScan) {
    // n_namesz 0xfffffffd: padded in 32 bits it is 0, and the next bytes
    // (a well-formed id note) would be taken for the following note. The
    // name runs ~4 GiB past the segment: the notes are malformed.
    std::vector<char> notes = note(0xfffffffd, 0, 1, "", {});
    auto id = gnu_id(twenty_bytes());
    notes.insert(notes.end(), id.begin(), id.end());
    std::string got = id_of(elf_with_notes(notes));
    EXPECT_TRUE(is_stat_id(got)) << got;
}

TEST(BuildId, ADescriptorSizeThatWrapsWhenPaddedEndsTheScan) {
    std::vector<char> notes;
    ElfW(Nhdr) header{4, 0xffffffff, NT_GNU_BUILD_ID};
    append(notes, &header, sizeof header);
    append(notes, "GNU\0", 4);
    auto id = gnu_id(twenty_bytes());
    notes.insert(notes.end(), id.begin(), id.end());
    std::string got = id_of(elf_with_notes(notes));
    EXPECT_TRUE(is_stat_id(got)) << got;
}

TEST(BuildId, ADescriptorPastTheSegmentIsNotRead) {
    // The id note claims 20 bytes; the segment ends after 8 of them.
    auto notes = gnu_id(twenty_bytes());
    notes.resize(sizeof(ElfW(Nhdr)) + 4 + 8);
    std::string got = id_of(elf_with_notes(notes));
    EXPECT_TRUE(is_stat_id(got)) << got;
}

TEST(BuildId, ASegmentOrHeaderTableBeyondTheFileIsNotRead) {
    auto bytes = elf_with_notes(gnu_id(twenty_bytes()));
    // p_filesz larger than what follows in the file.
    auto longer = bytes;
    ElfW(Phdr) ph;
    std::memcpy(&ph, longer.data() + sizeof(ElfW(Ehdr)), sizeof ph);
    ph.p_filesz += 1;
    std::memcpy(longer.data() + sizeof(ElfW(Ehdr)), &ph, sizeof ph);
    EXPECT_TRUE(is_stat_id(id_of(longer)));
    // p_offset near 2^64 (signed overflow as an off_t).
    ph.p_filesz -= 1;
    ph.p_offset = ~uint64_t(0) - 4;
    std::memcpy(longer.data() + sizeof(ElfW(Ehdr)), &ph, sizeof ph);
    EXPECT_TRUE(is_stat_id(id_of(longer)));
    // e_phoff past the end.
    auto far = bytes;
    ElfW(Ehdr) eh;
    std::memcpy(&eh, far.data(), sizeof eh);
    eh.e_phoff = ~uint64_t(0) - 8;
    std::memcpy(far.data(), &eh, sizeof eh);
    EXPECT_TRUE(is_stat_id(id_of(far)));
}

TEST(BuildId, AnElfOfTheOtherClassIsNotParsedAsThisOne) {
    auto bytes = elf_with_notes(gnu_id(twenty_bytes()));
    bytes[EI_CLASS] = sizeof(void*) == 8 ? ELFCLASS32 : ELFCLASS64;
    EXPECT_TRUE(is_stat_id(id_of(bytes)));
}

TEST(BuildId, TruncatedCopiesOfThisBinaryGiveTheWholeIdOrNone) {
    std::string self_id = build_id_of_file("/proc/self/exe");
    ASSERT_FALSE(self_id.empty());
    if (is_stat_id(self_id)) {
        GTEST_SKIP() << "LOUD SKIP: this test binary has no GNU build-id note";
    }
    EXPECT_EQ(self_id, build_id());
    // Its first 64 KiB hold the headers and notes; cut them at every byte
    // up to there would be slow, so at every byte of the first 4 KiB and at
    // the notes' edges.
    int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    std::vector<char> head(65536);
    ssize_t n = ::read(fd, head.data(), head.size());
    ::close(fd);
    ASSERT_GT(n, 0);
    head.resize(static_cast<size_t>(n));
    bool whole_seen = false;
    for (size_t cut = 0; cut <= std::min<size_t>(head.size(), 4096); ++cut) {
        std::string got = id_of(std::vector<char>(head.begin(), head.begin() + cut));
        EXPECT_TRUE(got == self_id || is_stat_id(got)) << "cut at " << cut << ": " << got;
        whole_seen = whole_seen || got == self_id;
    }
    EXPECT_TRUE(whole_seen) << "the id notes lie beyond the first 4 KiB";
}

TEST(BuildId, RandomNoteBytesNeverYieldAPartialId) {
    std::mt19937 random(20261126);
    for (int round = 0; round < 2000; ++round) {
        size_t size = random() % 96;
        std::vector<char> notes(size);
        for (auto& byte : notes) {
            byte = static_cast<char>(random());
        }
        // Now and then a plausible header, so the size checks are reached.
        if (size >= sizeof(ElfW(Nhdr)) && round % 2 == 0) {
            ElfW(Nhdr) header{static_cast<uint32_t>(round % 3 == 0 ? 4 : random()),
                              static_cast<uint32_t>(random() % 4 == 0 ? random() : random() % 64),
                              NT_GNU_BUILD_ID};
            std::memcpy(notes.data(), &header, sizeof header);
            if (size >= sizeof header + 4) {
                std::memcpy(notes.data() + sizeof header, "GNU\0", 4);
            }
        }
        std::string got = id_of(elf_with_notes(notes, round % 4 == 0 ? 8 : 4));
        if (!is_stat_id(got)) {
            // A found id lies wholly inside the segment.
            EXPECT_LE(got.size() / 2 + sizeof(ElfW(Nhdr)) + 4, size) << "round " << round;
        }
    }
}

}  // namespace
}  // namespace locald::daemon::internal
