#include "layers/layer_applier.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <unistd.h>
#include <cstring>

#include "base/sha256.h"
#include "fs_snapshot.h"
#include "tar_builder.h"
#include "test_util.h"

namespace locald::layers {
namespace {

using namespace testing;

class TempRoot : public ::testing::Test {
protected:
    void SetUp() override {
        m_dir = make_temp_dir("layers-test");
        ASSERT_FALSE(m_dir.empty());
        m_root = m_dir + "/root";
        ASSERT_EQ(mkdir(m_root.c_str(), 0755), 0);
    }
    void TearDown() override { remove_tree(m_dir); }
    std::string path(const std::string& rel) const { return m_root + "/" + rel; }
    std::string m_dir;
    std::string m_root;
};

TEST(CleanEntryPath, ClampsToRoot) {
    EXPECT_EQ(clean_entry_path("./a//b/../c/"), "a/c");
    EXPECT_EQ(clean_entry_path("../../etc/passwd"), "etc/passwd");
    EXPECT_EQ(clean_entry_path("/abs/x"), "abs/x");
    EXPECT_EQ(clean_entry_path(".."), "");
    EXPECT_EQ(clean_entry_path("/"), "");
    EXPECT_EQ(clean_entry_path("a/../../.."), "");
}

TEST(RootlessXattr, RoundTripsUmociFormat) {
    EXPECT_EQ(encode_rootless_xattr(0, 0), "");
    // umoci: Resource{uid: 1000, gid: NoopID} for uid 1000, gid 0.
    std::string payload = encode_rootless_xattr(1000, 0);
    EXPECT_EQ(base::to_hex(payload.data(), payload.size()), "08e80710ffffffff0f");
    auto decoded = decode_rootless_xattr(payload);
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(decoded->first, 1000u);
    EXPECT_EQ(decoded->second, 0u);
    EXPECT_FALSE(decode_rootless_xattr("\x08\xff").has_value());
}

struct CompressionCase {
    const char* name;
    TarCompression compression;
    Compression expected;
};

class ApplyCompression : public TempRoot, public ::testing::WithParamInterface<CompressionCase> {};

TEST_P(ApplyCompression, EntriesDiffIdAndMetadata) {
    std::vector<TarEntry> entries = {
        dir("etc/", 0755),
        file("etc/hosts", "127.0.0.1 localhost\n", 0644),
        file("bin/tool", std::string(300000, 'x'), 04755),
        symlink("bin/sh", "/bin/tool"),
        hardlink("bin/tool2", "bin/tool"),
        fifo("run/fifo", 0600),
        dir("locked/", 0500),
        file("locked/inside", "secret", 0400),
    };
    std::string raw = build_tar(entries);
    std::string blob = build_tar(entries, GetParam().compression);
    ApplyOptions options;
    options.expected_diff_id = sha256_digest(raw);
    options.ownership = geteuid() == 0 ? OwnershipMode::Preserve : OwnershipMode::RootlessXattr;
    auto stats = apply_bytes(m_root, blob, options);
    ASSERT_TRUE(stats.has_value()) << stats.error().to_string();
    EXPECT_EQ(stats->compression, GetParam().expected);
    EXPECT_EQ(stats->diff_id, sha256_digest(raw));
    EXPECT_EQ(stats->compressed_digest, sha256_digest(blob));
    EXPECT_EQ(stats->uncompressed_bytes, raw.size());
    EXPECT_EQ(read_file_or_empty(path("etc/hosts")), "127.0.0.1 localhost\n");
    EXPECT_EQ(read_file_or_empty(path("bin/tool")), std::string(300000, 'x'));
    struct stat st;
    ASSERT_EQ(lstat(path("bin/tool").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 04755u);
    EXPECT_EQ(st.st_nlink, 2u);
    EXPECT_EQ(st.st_mtim.tv_sec, 1'600'000'000);
    ASSERT_EQ(lstat(path("bin/sh").c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode));
    char target[64] = {};
    ASSERT_GT(readlink(path("bin/sh").c_str(), target, sizeof(target)), 0);
    EXPECT_STREQ(target, "/bin/tool");
    ASSERT_EQ(lstat(path("run/fifo").c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    ASSERT_EQ(lstat(path("locked").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0500u);
    EXPECT_EQ(st.st_mtim.tv_sec, 1'600'000'000);
    // Implicit parents (no tar entry) are reported.
    EXPECT_NE(std::find(stats->implicit_dirs.begin(), stats->implicit_dirs.end(), "bin"),
              stats->implicit_dirs.end());
}

INSTANTIATE_TEST_SUITE_P(
    All, ApplyCompression,
    ::testing::Values(CompressionCase{"plain", TarCompression::None, Compression::None},
                      CompressionCase{"gzip", TarCompression::Gzip, Compression::Gzip},
                      CompressionCase{"zstd", TarCompression::Zstd, Compression::Zstd}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(TempRoot, DiffIdMismatchIsDataLoss) {
    std::string blob = build_tar({file("a", "1")}, TarCompression::Gzip);
    ApplyOptions options;
    options.layer_digest = "sha256:feedface";
    options.expected_diff_id = sha256_digest("something else");
    auto stats = apply_bytes(m_root, blob, options);
    ASSERT_FALSE(stats.has_value());
    EXPECT_EQ(stats.error().kind(), base::ErrorKind::DataLoss);
    EXPECT_NE(stats.error().message().find("sha256:feedface"), std::string::npos);
}

TEST_F(TempRoot, MultiMemberGzipIsOneStream) {
    std::string raw = build_tar({file("a", "1"), file("b", std::string(5000, 'b'))});
    std::string blob = gzip_bytes(raw.substr(0, 1000)) + gzip_bytes(raw.substr(1000));
    ApplyOptions options;
    options.expected_diff_id = sha256_digest(raw);
    auto stats = apply_bytes(m_root, blob, options);
    ASSERT_TRUE(stats.has_value()) << stats.error().to_string();
    EXPECT_EQ(read_file_or_empty(path("b")), std::string(5000, 'b'));
}

struct BadInput {
    const char* name;
    std::string blob;
    std::string expect_in_message;
};

class BadLayers : public TempRoot, public ::testing::WithParamInterface<int> {};

std::vector<BadInput> bad_inputs() {
    std::string raw = build_tar({file("first", "1"), file("second", std::string(100000, 's'))});
    std::string gz = gzip_bytes(raw);
    std::string corrupt_gz = gz;
    corrupt_gz[gz.size() / 2] ^= 0x55;
    corrupt_gz[gz.size() / 2 + 1] ^= 0x55;
    std::string bad_crc = gz;
    bad_crc[gz.size() - 6] ^= 0x01;  // CRC32 in the trailer
    std::string zs = zstd_bytes(raw);
    std::string corrupt_zs = zs;
    corrupt_zs[zs.size() / 2] ^= 0x55;
    return {
        {"truncated_tar", raw.substr(0, 1024 + 512 + 100), "second"},
        {"truncated_gzip", gz.substr(0, gz.size() / 2), "truncated gzip"},
        {"corrupt_gzip", corrupt_gz, "gzip"},
        {"bad_gzip_crc", bad_crc, "gzip"},
        {"truncated_zstd", zs.substr(0, zs.size() - 10), "zstd"},
        {"corrupt_zstd", corrupt_zs, "first"},
        {"gzip_trailing_garbage", gz + "garbage!", "gzip"},
        {"not_a_tar", std::string(2048, 'Z'), "sha256:bad"},
    };
}

TEST_P(BadLayers, FailWithDataLossNamingTheLayer) {
    auto input = bad_inputs()[static_cast<size_t>(GetParam())];
    ApplyOptions options;
    options.layer_digest = "sha256:bad";
    auto stats = apply_bytes(m_root, input.blob, options);
    ASSERT_FALSE(stats.has_value()) << input.name;
    EXPECT_EQ(stats.error().kind(), base::ErrorKind::DataLoss)
        << input.name << ": " << stats.error().to_string();
    EXPECT_NE(stats.error().message().find("sha256:bad"), std::string::npos)
        << stats.error().message();
    EXPECT_NE(stats.error().message().find(input.expect_in_message), std::string::npos)
        << input.name << ": " << stats.error().message();
}

INSTANTIATE_TEST_SUITE_P(All, BadLayers, ::testing::Range(0, 8), [](const auto& info) {
    return std::string(bad_inputs()[info.param].name);
});

TEST_F(TempRoot, TarBombLimits) {
    std::vector<TarEntry> many;
    for (int i = 0; i < 50; i++) {
        many.push_back(file("f" + std::to_string(i), "x"));
    }
    ApplyOptions options;
    options.limits.max_entries = 10;
    auto stats = apply_bytes(m_root, build_tar(many, TarCompression::Gzip), options);
    ASSERT_FALSE(stats.has_value());
    EXPECT_EQ(stats.error().kind(), base::ErrorKind::DataLoss);
    EXPECT_NE(stats.error().message().find("f10"), std::string::npos) << stats.error().message();

    ApplyOptions bytes;
    bytes.limits.max_uncompressed_bytes = 1 << 20;
    auto big = apply_bytes(
        m_root, build_tar({file("big", std::string(4 << 20, '\0'))}, TarCompression::Zstd), bytes);
    ASSERT_FALSE(big.has_value());
    EXPECT_EQ(big.error().kind(), base::ErrorKind::DataLoss);
    EXPECT_NE(big.error().message().find("limit"), std::string::npos);

    ApplyOptions names;
    names.limits.max_path_bytes = 100;
    auto longname = apply_bytes(m_root, build_tar({file(std::string(300, 'n'), "x")}), names);
    ASSERT_FALSE(longname.has_value());
    EXPECT_EQ(longname.error().kind(), base::ErrorKind::DataLoss);
}

TEST_F(TempRoot, XattrAllowlist) {
    TarEntry f = file("f", "data");
    f.xattrs = {{"user.keep", "1"},
                {"user.overlay.opaque", "y"},
                {"user.rootlesscontainers", "bogus"},
                {"trusted.evil", "1"},
                {"security.selinux", "system_u:object_r:etc_t:s0"}};
    auto stats = apply_bytes(m_root, build_tar({f}));
    ASSERT_TRUE(stats.has_value()) << stats.error().to_string();
    char value[16];
    ASSERT_EQ(lgetxattr(path("f").c_str(), "user.keep", value, sizeof(value)), 1);
    EXPECT_EQ(lgetxattr(path("f").c_str(), "user.overlay.opaque", value, sizeof(value)), -1);
    EXPECT_EQ(lgetxattr(path("f").c_str(), "trusted.evil", value, sizeof(value)), -1);
    EXPECT_EQ(lgetxattr(path("f").c_str(), "user.rootlesscontainers", value, sizeof(value)), -1);
    EXPECT_GE(stats->dropped_xattrs, 3u);
}

TEST_F(TempRoot, MalformedWhiteoutsAreErrors) {
    for (const char* name : {"dir/.wh.", "dir/.wh..", "dir/.wh..."}) {
        auto stats = apply_bytes(m_root, build_tar({dir("dir/"), file(name, "")}));
        ASSERT_FALSE(stats.has_value()) << name;
        EXPECT_EQ(stats.error().kind(), base::ErrorKind::InvalidArgument) << name;
    }
}

TEST_F(TempRoot, OwnersAndSetuidAsRoot) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "needs root to chown to arbitrary ids (the rootless pass covers the rest)";
    }
    TarEntry a = file("a", "x", 04755);
    a.uid = 100;
    a.gid = 101;
    TarEntry d = dir("d/", 02775);
    d.uid = 999;
    d.gid = 999;
    TarEntry l = symlink("l", "a");
    l.uid = 5;
    l.gid = 6;
    auto stats = apply_bytes(m_root, build_tar({a, d, l}));
    ASSERT_TRUE(stats.has_value()) << stats.error().to_string();
    struct stat st;
    ASSERT_EQ(lstat(path("a").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 100u);
    EXPECT_EQ(st.st_gid, 101u);
    EXPECT_EQ(st.st_mode & 07777, 04755u);
    ASSERT_EQ(lstat(path("d").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 999u);
    EXPECT_EQ(st.st_mode & 07777, 02775u);
    ASSERT_EQ(lstat(path("l").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 5u);
}

}  // namespace
}  // namespace locald::layers

namespace locald::layers {
namespace {

using namespace testing;

class RootlessTempRoot : public TempRoot {};

TEST_F(TempRoot, FileCapabilitiesAreStoredAsV2) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "setting security.capability needs CAP_SETFCAP";
    }
    // v3 (namespaced) capability with rootid 1000: cap_net_raw permitted+effective.
    std::string v3(24, '\0');
    uint32_t magic = 0x03000000 | 0x1;
    uint32_t permitted = 1u << 13;
    uint32_t rootid = 1000;
    std::memcpy(v3.data(), &magic, 4);
    std::memcpy(v3.data() + 4, &permitted, 4);
    std::memcpy(v3.data() + 20, &rootid, 4);
    TarEntry ping = file("ping", "x", 0755);
    ping.xattrs = {{"security.capability", v3}};
    auto stats = apply_bytes(m_root, build_tar({ping}));
    ASSERT_TRUE(stats.has_value()) << stats.error().to_string();
    char value[64];
    ssize_t n = getxattr(path("ping").c_str(), "security.capability", value, sizeof(value));
    ASSERT_EQ(n, 20) << "v2 layout, no rootid chosen by the layer";
    uint32_t stored;
    std::memcpy(&stored, value, 4);
    EXPECT_EQ(stored, 0x02000000u | 0x1);
}

TEST_F(RootlessTempRoot, DevicesAreSkippedWithAWarning) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    TarEntry dev{TarEntry::CharDev, "dev/null", "", 0666};
    dev.major = 1;
    dev.minor = 3;
    TarEntry owned = file("owned", "x");
    owned.uid = 100;
    owned.gid = 101;
    ApplyOptions options;
    options.ownership = OwnershipMode::RootlessXattr;
    options.layer_digest = "sha256:devlayer";
    auto stats = apply_bytes(m_root, build_tar({dir("dev/"), dev, owned}), options);
    ASSERT_TRUE(stats.has_value()) << stats.error().to_string();
    EXPECT_EQ(stats->skipped_devices, 1u);
    ASSERT_FALSE(stats->warnings.empty());
    EXPECT_NE(stats->warnings[0].find("sha256:devlayer"), std::string::npos);
    struct stat st;
    EXPECT_NE(lstat(path("dev/null").c_str(), &st), 0);
    char value[32];
    ssize_t n = getxattr(path("owned").c_str(), kRootlessXattr, value, sizeof(value));
    ASSERT_GT(n, 0);
    auto ids = decode_rootless_xattr(std::string_view(value, static_cast<size_t>(n)));
    ASSERT_TRUE(ids.has_value());
    EXPECT_EQ(ids->first, 100u);
    EXPECT_EQ(ids->second, 101u);
}

}  // namespace
}  // namespace locald::layers
