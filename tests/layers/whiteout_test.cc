// Whiteout semantics table. Every case is applied three ways and must give
// the same tree: (1) Flatten mode, layer after layer onto one directory;
// (2) per-layer Overlay snapshots flattened by flatten_snapshots(); (3) as
// root, the same snapshots mounted by the kernel's overlayfs (read-only,
// lowerdirs only), which checks that the markers mean what overlayfs means.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/sha256.h"
#include "base/sys.h"
#include "fs_snapshot.h"
#include "layers/rootfs.h"
#include "layers/snapshot_store.h"
#include "tar_builder.h"
#include "test_util.h"

namespace locald::layers {
namespace {

using namespace testing;

struct WhiteoutCase {
    std::string name;
    std::vector<std::vector<TarEntry>> layers;
    std::string expected;  // listing(): "path type[:content]" lines
};

std::vector<WhiteoutCase> cases() {
    return {
        {"RemovesFile", {{file("a", "1"), file("b", "2")}, {file(".wh.a", "")}}, "b f:2\n"},
        {"RemovesDirectoryTree",
         {{dir("d/"), file("d/x", "1"), dir("d/y/"), file("d/y/z", "2"), file("keep", "k")},
          {file(".wh.d", "")}},
         "keep f:k\n"},
        {"ReAddedAfterWhiteoutSameLayer",
         {{dir("d/"), file("d/old", "o")}, {file(".wh.d", ""), dir("d/"), file("d/new", "n")}},
         "d d\nd/new f:n\n"},
        {"ReAddedBeforeWhiteoutSameLayer",
         {{dir("d/"), file("d/old", "o")}, {dir("d/"), file("d/new", "n"), file(".wh.d", "")}},
         "d d\nd/new f:n\n"},
        {"OpaqueFirst",
         {{dir("d/"), file("d/old", "o"), dir("d/sub/"), file("d/sub/x", "x")},
          {dir("d/"), file("d/.wh..wh..opq", ""), file("d/new", "n")}},
         "d d\nd/new f:n\n"},
        {"OpaqueLast",
         {{dir("d/"), file("d/old", "o")},
          {dir("d/"), file("d/new", "n"), file("d/.wh..wh..opq", "")}},
         "d d\nd/new f:n\n"},
        {"OpaqueWithoutDirEntry",
         {{dir("d/"), file("d/old", "o")}, {file("d/.wh..wh..opq", "")}},
         "d d\n"},
        {"WhiteoutOfMissingName", {{file("a", "1")}, {file(".wh.nothing", "")}}, "a f:1\n"},
        {"NestedWhiteout",
         {{dir("a/"), dir("a/b/"), file("a/b/c", "c"), file("a/b/d", "d")},
          {file("a/b/.wh.c", "")}},
         "a d\na/b d\na/b/d f:d\n"},
        {"FileReplacedByDirectory",
         {{file("x", "file")}, {dir("x/"), file("x/y", "y")}},
         "x d\nx/y f:y\n"},
        {"DirectoryReplacedByFile",
         {{dir("x/"), file("x/y", "y")}, {file("x", "file")}},
         "x f:file\n"},
        {"SameLayerFileSurvivesLaterWhiteout",
         {{file("f", "old")}, {file("f", "new"), file(".wh.f", "")}},
         "f f:new\n"},
        {"ReAddedInLaterLayer",
         {{dir("d/"), file("d/a", "a")}, {file(".wh.d", "")}, {dir("d/"), file("d/b", "b")}},
         "d d\nd/b f:b\n"},
        {"SymlinkWhitedOut",
         {{symlink("l", "/etc"), file("x", "x")}, {file(".wh.l", "")}},
         "x f:x\n"},
        {"AufsMetadataIgnored",
         {{file("a", "1")}, {file(".wh..wh.plnk", ""), file(".wh..wh.aufs", "")}},
         "a f:1\n"},
    };
}

void list_into(const std::string& root, const std::string& rel, std::string& out) {
    std::string path = rel.empty() ? root : root + "/" + rel;
    std::vector<std::string> names;
    if (DIR* d = opendir(path.c_str())) {
        while (auto* e = readdir(d)) {
            std::string n = e->d_name;
            if (n != "." && n != "..") {
                names.push_back(n);
            }
        }
        closedir(d);
    }
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
        std::string crel = rel.empty() ? n : rel + "/" + n;
        struct stat st;
        lstat((root + "/" + crel).c_str(), &st);
        if (S_ISDIR(st.st_mode)) {
            out += crel + " d\n";
            list_into(root, crel, out);
        } else if (S_ISREG(st.st_mode)) {
            out += crel + " f:" + read_file_or_empty(root + "/" + crel) + "\n";
        } else if (S_ISLNK(st.st_mode)) {
            out += crel + " l\n";
        } else {
            out += crel + " other\n";
        }
    }
}

std::string listing(const std::string& root) {
    std::string out;
    list_into(root, "", out);
    return out;
}

class Whiteouts : public ::testing::TestWithParam<int> {
protected:
    void SetUp() override { m_tmp = make_temp_dir("layers-whiteout"); }
    void TearDown() override { remove_tree(m_tmp); }
    OwnershipMode ownership() const {
        return geteuid() == 0 ? OwnershipMode::Preserve : OwnershipMode::RootlessXattr;
    }
    std::string m_tmp;
};

std::vector<LayerSource> sources_for(const WhiteoutCase& c, const std::string& dir) {
    std::vector<LayerSource> out;
    int i = 0;
    for (const auto& layer : c.layers) {
        std::string tar = build_tar(layer, TarCompression::Gzip);
        std::string raw = build_tar(layer);
        std::string path = dir + "/blob" + std::to_string(i++);
        FILE* f = fopen(path.c_str(), "w");
        if (f == nullptr) {
            ADD_FAILURE() << "cannot write " << path;
            return {};
        }
        fwrite(tar.data(), 1, tar.size(), f);
        fclose(f);
        out.push_back(LayerSource{sha256_digest(tar), sha256_digest(raw),
                                  [path]() { return base::open_file(path, O_RDONLY); }});
    }
    return out;
}

void check_case(const WhiteoutCase& c, const std::string& tmp, OwnershipMode ownership) {
    // (1) Flatten mode.
    std::string flat = tmp + "/flat";
    ASSERT_EQ(mkdir(flat.c_str(), 0755), 0);
    for (const auto& layer : c.layers) {
        ApplyOptions options;
        options.ownership = ownership;
        auto r = apply_bytes(flat, build_tar(layer), options);
        ASSERT_TRUE(r.has_value()) << r.error().to_string();
    }
    EXPECT_EQ(listing(flat), c.expected) << "flatten mode";

    // (2) Overlay snapshots, flattened by copy.
    auto store = SnapshotStore::open(tmp + "/data");
    ASSERT_TRUE(store.has_value()) << store.error().to_string();
    SnapshotApplyOptions options;
    options.ownership = ownership;
    options.trusted_overlay_xattrs = geteuid() == 0;
    auto paths = store->ensure(sources_for(c, tmp), options);
    ASSERT_TRUE(paths.has_value()) << paths.error().to_string();
    ASSERT_EQ(paths->size(), c.layers.size());
    std::string copy = tmp + "/copy";
    ASSERT_EQ(mkdir(copy.c_str(), 0755), 0);
    base::UniqueFd copy_fd(open(copy.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    auto flattened = flatten_snapshots(*paths, copy_fd.get());
    ASSERT_TRUE(flattened.has_value()) << flattened.error().to_string();
    EXPECT_EQ(listing(copy), c.expected) << "snapshots + flatten_snapshots";

    // (3) The kernel's overlayfs over the same snapshots.
    if (geteuid() == 0) {
        std::string merged = tmp + "/merged";
        ASSERT_EQ(mkdir(merged.c_str(), 0755), 0);
        std::vector<std::string> lowers = *paths;
        if (lowers.size() == 1) {
            // overlayfs needs two lowers without an upper dir.
            std::string empty = tmp + "/empty";
            mkdir(empty.c_str(), 0755);
            lowers.insert(lowers.begin(), empty);
        }
        auto mount_spec = describe_overlay(lowers, "", "", false);
        ASSERT_TRUE(mount_spec.has_value());
        ASSERT_EQ(
            mount("overlay", merged.c_str(), "overlay", MS_RDONLY, mount_spec->options().c_str()),
            0)
            << strerror(errno) << " " << mount_spec->options();
        EXPECT_EQ(listing(merged), c.expected) << "kernel overlayfs";
        umount2(merged.c_str(), MNT_DETACH);
    }
}

TEST_P(Whiteouts, SameTreeEveryWay) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "root pass (RootlessWhiteouts runs the table unprivileged)";
    }
    check_case(cases()[static_cast<size_t>(GetParam())], m_tmp, ownership());
}

class RootlessWhiteouts : public Whiteouts {};

TEST_P(RootlessWhiteouts, SameTreeEveryWay) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    check_case(cases()[static_cast<size_t>(GetParam())], m_tmp, ownership());
}

auto case_name = [](const auto& info) { return cases()[static_cast<size_t>(info.param)].name; };
INSTANTIATE_TEST_SUITE_P(Table, Whiteouts, ::testing::Range(0, int(cases().size())), case_name);
INSTANTIATE_TEST_SUITE_P(Table, RootlessWhiteouts, ::testing::Range(0, int(cases().size())),
                         case_name);

TEST(Snapshots, ChainIdsFollowTheSpec) {
    std::string a = "sha256:" + std::string(64, 'a');
    std::string b = "sha256:" + std::string(64, 'b');
    auto chains = chain_ids({a, b});
    ASSERT_EQ(chains.size(), 2u);
    EXPECT_EQ(chains[0], a);
    EXPECT_EQ(chains[1], "sha256:" + base::sha256_hex(a + " " + b));
    EXPECT_FALSE(is_valid_sha256_digest("sha256:../../etc"));
    EXPECT_FALSE(is_valid_sha256_digest("sha256:" + std::string(64, 'A')));
}

TEST(Snapshots, DiffIdMismatchCommitsNothingAndSharedLayersAreReused) {
    std::string tmp = make_temp_dir("layers-snap");
    auto store = SnapshotStore::open(tmp + "/data");
    ASSERT_TRUE(store.has_value());
    WhiteoutCase c{"x", {{file("a", "1")}, {file("b", "2")}}, ""};
    auto sources = sources_for(c, tmp);
    auto bad = sources;
    bad[1].diff_id = "sha256:" + std::string(64, '0');
    SnapshotApplyOptions options;
    options.ownership = geteuid() == 0 ? OwnershipMode::Preserve : OwnershipMode::RootlessXattr;
    auto failed = store->ensure(bad, options);
    ASSERT_FALSE(failed.has_value());
    EXPECT_EQ(failed.error().kind(), base::ErrorKind::DataLoss);
    // Layer 0 may have been committed (it is valid); layer 1 must not be,
    // and no temporary directory may be left behind.
    auto listed = store->list();
    ASSERT_TRUE(listed.has_value());
    EXPECT_LE(listed->size(), 1u);
    EXPECT_EQ(snapshot_tree(store->root()).count(".tmp"), 0u);
    for (const auto& [path, desc] : snapshot_tree(store->root())) {
        EXPECT_EQ(path.find(".tmp"), std::string::npos) << path;
    }
    auto ok = store->ensure(sources, options);
    ASSERT_TRUE(ok.has_value()) << ok.error().to_string();
    EXPECT_EQ(read_file_or_empty((*ok)[1] + "/b"), "2");
    // A second image sharing layer 0 reuses the snapshot (same path).
    WhiteoutCase other{"y", {{file("a", "1")}, {file("c", "3")}}, ""};
    ASSERT_EQ(mkdir((tmp + "/other").c_str(), 0755), 0);
    auto shared = store->ensure(sources_for(other, tmp + "/other"), options);
    ASSERT_TRUE(shared.has_value()) << shared.error().to_string();
    EXPECT_EQ((*shared)[0], (*ok)[0]);
    EXPECT_EQ(store->list()->size(), 3u);
    auto keep = chain_ids({sources[0].diff_id, sources[1].diff_id});
    auto removed = store->prune({keep.begin(), keep.end()});
    ASSERT_TRUE(removed.has_value()) << removed.error().to_string();
    EXPECT_EQ(removed->size(), 1u);
    EXPECT_EQ(store->list()->size(), 2u);
    remove_tree(tmp);
}

}  // namespace
}  // namespace locald::layers
