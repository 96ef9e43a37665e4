#include "layers/tar_writer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs_snapshot.h"
#include "tar_builder.h"
#include "test_util.h"

namespace locald::layers {
namespace {

using namespace testing;

constexpr int64_t kEpoch = 1'234'567'890;

std::vector<TarEntry> rich_tree() {
    auto at_epoch = [](TarEntry e) {
        e.mtime = kEpoch;
        return e;
    };
    TarEntry owned = file("data/owned", "o", 0640);
    owned.uid = 100;
    owned.gid = 101;
    TarEntry xattr = file("data/x", "x");
    xattr.xattrs = {{"user.note", "hello"}};
    return {at_epoch(dir("bin/")),
            at_epoch(file("bin/su", std::string(200000, 's'), 04755)),
            at_epoch(hardlink("bin/su2", "bin/su")),
            at_epoch(symlink("bin/sh", "/bin/su")),
            at_epoch(dir("data/", 0750)),
            at_epoch(owned),
            at_epoch(xattr),
            at_epoch(fifo("data/fifo", 0600)),
            at_epoch(dir("empty/", 0700)),
            at_epoch(file("zero", ""))};
}

struct Written {
    TarWriteResult result;
    std::string bytes;
};

Written write_tree(const std::string& dir, const std::string& out, TarWriterOptions options) {
    base::UniqueFd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    auto result = write_layer_from_dir(dir, fd.get(), options);
    EXPECT_TRUE(result.has_value()) << result.error().to_string();
    return {result.has_value() ? *result : TarWriteResult{}, read_file_or_empty(out)};
}

class TarWriterRoundTrip : public ::testing::TestWithParam<Compression> {};
class RootlessTarWriterRoundTrip : public TarWriterRoundTrip {};

void round_trip(Compression compression);

TEST_P(TarWriterRoundTrip, WriteApplyGivesTheIdenticalTreeAndBytesAreStable) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "root pass (RootlessTarWriterRoundTrip runs unprivileged)";
    }
    round_trip(GetParam());
}

TEST_P(RootlessTarWriterRoundTrip, WriteApplyGivesTheIdenticalTreeAndBytesAreStable) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    round_trip(GetParam());
}

void round_trip(Compression compression) {
    std::string tmp = make_temp_dir("layers-tarwriter");
    std::string a = tmp + "/a";
    std::string b = tmp + "/b";
    mkdir(a.c_str(), 0755);
    mkdir(b.c_str(), 0755);
    ApplyOptions apply;
    apply.ownership = geteuid() == 0 ? OwnershipMode::Preserve : OwnershipMode::RootlessXattr;
    auto first = apply_bytes(a, build_tar(rich_tree()), apply);
    ASSERT_TRUE(first.has_value()) << first.error().to_string();

    TarWriterOptions options;
    options.compression = compression;
    options.source_date = kEpoch;
    // Unprivileged: the files are ours and their owners live in the xattr,
    // which the writer turns back into tar owners.
    options.owners_from_rootless_xattr = geteuid() != 0;
    Written w1 = write_tree(a, tmp + "/layer1", options);
    Written w2 = write_tree(a, tmp + "/layer2", options);
    EXPECT_EQ(w1.bytes, w2.bytes) << "deterministic output";
    EXPECT_EQ(w1.result.digest, sha256_digest(w1.bytes));
    EXPECT_EQ(w1.result.size, w1.bytes.size());
    EXPECT_EQ(sniff_compression(w1.bytes.substr(0, 4)), compression);

    ApplyOptions again = apply;
    again.expected_diff_id = w1.result.diff_id;  // the DiffID the writer computed
    auto second = apply_bytes(b, w1.bytes, again);
    ASSERT_TRUE(second.has_value()) << second.error().to_string();
    EXPECT_EQ(second->compressed_digest, w1.result.digest);
    SnapshotOptions snap;
    snap.include_times = true;
    auto before = snapshot_tree(a, snap);
    auto after = snapshot_tree(b, snap);
    before.erase("");
    after.erase("");
    EXPECT_EQ(diff_snapshots(before, after), "");
    remove_tree(tmp);
}

INSTANTIATE_TEST_SUITE_P(All, TarWriterRoundTrip,
                         ::testing::Values(Compression::None, Compression::Gzip, Compression::Zstd),
                         [](const auto& info) { return std::string(to_string(info.param)); });
INSTANTIATE_TEST_SUITE_P(All, RootlessTarWriterRoundTrip,
                         ::testing::Values(Compression::None, Compression::Gzip, Compression::Zstd),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(TarWriter, SourceDateEpochAndOwnerOverride) {
    std::string tmp = make_temp_dir("layers-tarwriter");
    std::string a = tmp + "/a";
    mkdir(a.c_str(), 0755);
    FILE* f = fopen((a + "/f").c_str(), "w");
    fputs("x", f);
    fclose(f);
    setenv("SOURCE_DATE_EPOCH", "42", 1);
    TarWriterOptions options;
    options.compression = Compression::None;
    options.uid = 7;
    options.gid = 8;
    Written w = write_tree(a, tmp + "/layer", options);
    unsetenv("SOURCE_DATE_EPOCH");
    // ustar header of the first entry: uid at 108, gid at 116, mtime at 136 (octal).
    ASSERT_GE(w.bytes.size(), 512u);
    EXPECT_EQ(std::stoi(w.bytes.substr(108, 7), nullptr, 8), 7);
    EXPECT_EQ(std::stoi(w.bytes.substr(116, 7), nullptr, 8), 8);
    EXPECT_EQ(std::stol(w.bytes.substr(136, 11), nullptr, 8), 42);
    EXPECT_EQ(w.result.diff_id, sha256_digest(w.bytes));
    setenv("SOURCE_DATE_EPOCH", "yesterday", 1);
    base::UniqueFd fd(::open((tmp + "/bad").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    auto bad = write_layer_from_dir(a, fd.get(), {});
    unsetenv("SOURCE_DATE_EPOCH");
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().kind(), base::ErrorKind::InvalidArgument);
    remove_tree(tmp);
}

}  // namespace
}  // namespace locald::layers
