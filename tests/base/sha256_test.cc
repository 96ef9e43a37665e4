#include "base/sha256.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "base/sys.h"
#include "base/temp_dir.h"

namespace locald::base {
namespace {

// FIPS 180-2 / NIST known answers.
TEST(Sha256Test, KnownAnswers) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, StreamingEqualsOneShotAndPeekingDoesNotDisturb) {
    std::string data;
    for (int i = 0; i < 100000; ++i) {
        data += static_cast<char>(i * 7);
    }
    Sha256 hash;
    size_t offset = 0;
    size_t step = 1;
    while (offset < data.size()) {
        size_t n = std::min(step, data.size() - offset);
        hash.update(std::string_view(data).substr(offset, n));
        offset += n;
        step = step * 3 + 1;
        if (offset == 40) {
            // A mid-stream digest is the digest of the prefix.
            EXPECT_EQ(hash.hex_digest(), sha256_hex(data.substr(0, 40)));
        }
    }
    EXPECT_EQ(hash.size(), data.size());
    EXPECT_EQ(hash.hex_digest(), sha256_hex(data));
    EXPECT_EQ(hash.hex_digest(), sha256_hex(data));  // idempotent
    hash.reset();
    EXPECT_EQ(hash.size(), 0u);
    EXPECT_EQ(hash.hex_digest(), sha256_hex(""));
    Sha256 moved = std::move(hash);
    moved.update("abc");
    EXPECT_EQ(moved.hex_digest(), sha256_hex("abc"));
    EXPECT_EQ(moved.digest()[0], 0xba);
}

TEST(Sha256Test, HashesAnFd) {
    auto temp = TempDir::create("sha").release_value();
    std::string path = temp.join("blob");
    ASSERT_TRUE(write_file(path, "abc"));
    UniqueFd fd = open_file(path, O_RDONLY).release_value();
    EXPECT_EQ(sha256_fd_hex(fd.get()).value(),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    // A write-only fd cannot be read: the error says so.
    UniqueFd write_only = open_file(path, O_WRONLY).release_value();
    auto failed = sha256_fd_hex(write_only.get());
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().errno_value(), EBADF);
}

TEST(Sha256Test, Hex) {
    const unsigned char bytes[] = {0x00, 0x0f, 0xa5, 0xff};
    EXPECT_EQ(to_hex(bytes, sizeof bytes), "000fa5ff");
    EXPECT_EQ(to_hex(bytes, 0), "");
}

}  // namespace
}  // namespace locald::base
