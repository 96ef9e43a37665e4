// PipelinedApply fed as a pull feeds it: blobs reported committed one by
// one, in any order, from a real content store. Snapshots and Flatten mode,
// a layer that never arrives, a config that does not match the manifest —
// as root and, in the Rootless suite, through the container user namespace.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs_snapshot.h"
#include "layers/pipelined_apply.h"
#include "oci/media_types.h"
#include "tar_builder.h"

namespace locald::layers {
namespace {

using namespace testing;

struct Fixture {
    std::string tmp;
    std::optional<oci::ContentStore> store;
    oci::ImageManifest manifest;
    std::vector<std::string> diff_ids;
};

oci::Descriptor put(oci::ContentStore& store, const std::string& data, std::string media_type) {
    auto digest = store.write_blob(data);
    EXPECT_TRUE(digest.has_value());
    oci::Descriptor d;
    d.media_type = std::move(media_type);
    d.digest = *digest;
    d.size = static_cast<int64_t>(data.size());
    return d;
}

// Two layers (the top one removes a file of the bottom one); `config_diff_ids`
// overrides the config's list.
void make_image(Fixture& f, std::optional<std::vector<std::string>> config_diff_ids = {}) {
    f.tmp = make_temp_dir("layers-pipelined");
    auto store = oci::ContentStore::open(f.tmp + "/data");
    ASSERT_TRUE(store.has_value()) << store.error().to_string();
    f.store.emplace(std::move(*store));
    TarEntry owned = file("srv/owned", "o", 0640);
    owned.uid = 100;
    owned.gid = 100;
    std::vector<std::vector<TarEntry>> layers = {
        {dir("srv/"), owned, file("etc/old", "x")},
        {file("etc/.wh.old", ""), file("srv/top", "t")},
    };
    for (const auto& entries : layers) {
        f.manifest.layers.push_back(put(*f.store, build_tar(entries, TarCompression::Gzip),
                                        std::string(oci::media_types::kOciLayerGzip)));
        f.diff_ids.push_back(sha256_digest(build_tar(entries)));
    }
    std::string list;
    for (const auto& d : config_diff_ids.value_or(f.diff_ids)) {
        list += (list.empty() ? "\"" : ",\"") + d + "\"";
    }
    f.manifest.config = put(*f.store,
                            "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":"
                            "\"layers\",\"diff_ids\":[" +
                                list + "]}}",
                            std::string(oci::media_types::kOciConfig));
}

OwnershipPlan plan_or_fail() {
    auto plan = plan_ownership(RootlessMode::Auto);
    EXPECT_TRUE(plan.has_value());
    return std::move(plan).value_or(OwnershipPlan{});
}

size_t snapshot_count(const Fixture& f) {
    auto snapshots = SnapshotStore::open(f.tmp + "/data");
    return snapshots ? snapshots->list().value_or({}).size() : 0;
}

size_t leftover_count(const Fixture& f) {
    auto snapshots = SnapshotStore::open(f.tmp + "/data");
    return snapshots ? snapshots->leftovers().value_or({}).size() : 0;
}

void snapshots_out_of_order(const OwnershipPlan& plan) {
    Fixture f;
    make_image(f);
    auto pipeline = PipelinedApply::start(*f.store, plan, {});
    ASSERT_TRUE(pipeline.has_value()) << pipeline.error().to_string();
    // The top layer lands first, then the config, then the bottom layer.
    pipeline->on_blob(f.manifest, f.manifest.layers[1]);
    pipeline->on_blob(f.manifest, f.manifest.config);
    pipeline->on_blob(f.manifest, f.manifest.layers[0]);
    auto done = pipeline->finish();
    ASSERT_TRUE(done.has_value()) << done.error().to_string();
    EXPECT_EQ(pipeline->layers(), 2u);
    auto snapshots = SnapshotStore::open(f.tmp + "/data");
    ASSERT_TRUE(snapshots.has_value());
    for (const auto& chain : chain_ids(f.diff_ids)) {
        EXPECT_TRUE(snapshots->has(chain)) << chain;
    }
    struct stat st;
    std::string top = snapshots->fs_path(chain_ids(f.diff_ids)[1]);
    ASSERT_EQ(lstat((top + "/etc/old").c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << "an overlay whiteout marker";
    std::string bottom = snapshots->fs_path(chain_ids(f.diff_ids)[0]);
    ASSERT_EQ(lstat((bottom + "/srv/owned").c_str(), &st), 0);
    if (plan.privileged) {
        EXPECT_EQ(st.st_uid, 100u);
    } else if (plan.user_namespace) {
        EXPECT_EQ(st.st_uid, plan.mapping.uid_map[1].host_id + 99);
    }
    (void)remove_tree(plan, f.tmp);
    remove_tree(f.tmp);
}

void missing_layer_commits_nothing(const OwnershipPlan& plan) {
    Fixture f;
    make_image(f);
    auto pipeline = PipelinedApply::start(*f.store, plan, {});
    ASSERT_TRUE(pipeline.has_value()) << pipeline.error().to_string();
    pipeline->on_blob(f.manifest, f.manifest.config);
    pipeline->on_blob(f.manifest, f.manifest.layers[0]);
    auto done = pipeline->finish();  // the pull "failed": layer 1 never came
    ASSERT_FALSE(done.has_value());
    EXPECT_EQ(done.error().kind(), base::ErrorKind::Unavailable) << done.error().to_string();
    EXPECT_NE(done.error().message().find(f.manifest.layers[1].digest.str()), std::string::npos)
        << done.error().to_string();
    EXPECT_EQ(snapshot_count(f), 0u) << "snapshots appear whole, bottom-up, or not at all";
    EXPECT_EQ(leftover_count(f), 0u);
    (void)remove_tree(plan, f.tmp);
    remove_tree(f.tmp);
}

void config_mismatch_is_data_loss(const OwnershipPlan& plan) {
    Fixture f;
    make_image(f, std::vector<std::string>{"sha256:" + std::string(64, '0')});
    auto pipeline = PipelinedApply::start(*f.store, plan, {});
    ASSERT_TRUE(pipeline.has_value()) << pipeline.error().to_string();
    pipeline->on_blob(f.manifest, f.manifest.config);
    pipeline->on_blob(f.manifest, f.manifest.layers[0]);
    pipeline->on_blob(f.manifest, f.manifest.layers[1]);
    auto done = pipeline->finish();
    ASSERT_FALSE(done.has_value());
    EXPECT_EQ(done.error().kind(), base::ErrorKind::DataLoss) << done.error().to_string();
    EXPECT_NE(done.error().message().find("1 DiffIDs for 2 layers"), std::string::npos)
        << done.error().to_string();
    EXPECT_EQ(snapshot_count(f), 0u);
    (void)remove_tree(plan, f.tmp);
    remove_tree(f.tmp);
}

void flatten_in_order(const OwnershipPlan& plan) {
    Fixture f;
    make_image(f);
    std::string root = f.tmp + "/rootfs";
    ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
    PipelinedApply::Options options;
    options.mode = PipelinedApply::Mode::Flatten;
    options.flatten_root = root;
    auto pipeline = PipelinedApply::start(*f.store, plan, options);
    ASSERT_TRUE(pipeline.has_value()) << pipeline.error().to_string();
    pipeline->on_blob(f.manifest, f.manifest.layers[1]);
    pipeline->on_blob(f.manifest, f.manifest.layers[0]);
    pipeline->on_blob(f.manifest, f.manifest.config);
    auto done = pipeline->finish();
    ASSERT_TRUE(done.has_value()) << done.error().to_string();
    EXPECT_EQ(pipeline->layers(), 2u);
    EXPECT_GT(pipeline->uncompressed_bytes(), 0u);
    struct stat st;
    EXPECT_NE(lstat((root + "/etc/old").c_str(), &st), 0) << "whited out by the top layer";
    EXPECT_EQ(read_file_or_empty(root + "/srv/top"), "t");
    (void)remove_tree(plan, f.tmp);
    remove_tree(f.tmp);
}

TEST(PipelinedApply, SnapshotsFromBlobsInAnyOrder) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "root pass (RootlessPipelinedApply runs unprivileged)";
    }
    snapshots_out_of_order(plan_or_fail());
}
TEST(PipelinedApply, MissingLayerCommitsNothing) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "root pass";
    }
    missing_layer_commits_nothing(plan_or_fail());
}
TEST(PipelinedApply, ConfigNotMatchingTheManifestIsDataLoss) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "root pass";
    }
    config_mismatch_is_data_loss(plan_or_fail());
}
TEST(PipelinedApply, FlattenAppliesInOrder) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "root pass";
    }
    flatten_in_order(plan_or_fail());
}

TEST(RootlessPipelinedApply, SnapshotsFromBlobsInAnyOrder) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    snapshots_out_of_order(plan_or_fail());
}
TEST(RootlessPipelinedApply, MissingLayerCommitsNothing) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    missing_layer_commits_nothing(plan_or_fail());
}
TEST(RootlessPipelinedApply, FlattenAppliesInOrder) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    flatten_in_order(plan_or_fail());
}

}  // namespace
}  // namespace locald::layers
