// Images from a real content store: snapshots shared between images,
// pruning what no stored image needs, and both rootfs kinds — as root and,
// in the Rootless suite, in the container user namespace.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "base/sys.h"
#include "fs_snapshot.h"
#include "layers/unpack.h"
#include "oci/media_types.h"
#include "oci/reference.h"
#include "tar_builder.h"

namespace locald::layers {
namespace {

using namespace testing;

struct StoredLayer {
    std::string blob;
    std::string diff_id;
};

StoredLayer store_layer(oci::ContentStore& store, const std::vector<TarEntry>& entries) {
    std::string blob = build_tar(entries, TarCompression::Gzip);
    EXPECT_TRUE(store.write_blob(blob).has_value());
    return {blob, sha256_digest(build_tar(entries))};
}

void store_image(oci::ContentStore& store, const std::string& name,
                 const std::vector<StoredLayer>& layers) {
    std::string diff_ids;
    std::string descriptors;
    for (const auto& l : layers) {
        diff_ids += (diff_ids.empty() ? "" : ",") + ("\"" + l.diff_id + "\"");
        descriptors += fmt::format("{}{{\"mediaType\":\"{}\",\"digest\":\"{}\",\"size\":{}}}",
                                   descriptors.empty() ? "" : ",", oci::media_types::kOciLayerGzip,
                                   sha256_digest(l.blob), l.blob.size());
    }
    std::string config = fmt::format(
        "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{{}},"
        "\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[{}]}}}}",
        diff_ids);
    auto config_digest = store.write_blob(config);
    ASSERT_TRUE(config_digest.has_value());
    std::string manifest = fmt::format(
        "{{\"schemaVersion\":2,\"mediaType\":\"{}\",\"config\":{{\"mediaType\":\"{}\","
        "\"digest\":\"{}\",\"size\":{}}},\"layers\":[{}]}}",
        oci::media_types::kOciManifest, oci::media_types::kOciConfig, config_digest->str(),
        config.size(), descriptors);
    auto manifest_digest = store.write_blob(manifest);
    ASSERT_TRUE(manifest_digest.has_value());
    oci::RefRecord record;
    record.name = name;
    record.target.media_type = std::string(oci::media_types::kOciManifest);
    record.target.digest = *manifest_digest;
    record.target.size = static_cast<int64_t>(manifest.size());
    record.source = "test";
    ASSERT_TRUE(store.set_ref(record).has_value());
}

void shared_snapshots_prune_and_rootfs(const OwnershipPlan& plan) {
    std::string tmp = make_temp_dir("layers-image");
    auto store = oci::ContentStore::open(tmp + "/data");
    ASSERT_TRUE(store.has_value()) << store.error().to_string();
    TarEntry owned = file("srv/owned", "o", 0640);
    owned.uid = 100;
    owned.gid = 100;
    auto base_layer = store_layer(*store, {dir("srv/"), owned, file("etc/os", "base")});
    auto app_layer = store_layer(*store, {file("srv/app", "a"), file("etc/.wh.os", "")});
    auto other_layer = store_layer(*store, {file("srv/other", "b")});
    store_image(*store, "docker.io/library/app:1", {base_layer, app_layer});
    store_image(*store, "docker.io/library/other:1", {base_layer, other_layer});
    auto snapshots = SnapshotStore::open(tmp + "/data");
    ASSERT_TRUE(snapshots.has_value());

    std::vector<std::string> app_paths;
    for (const char* name : {"docker.io/library/app:1", "docker.io/library/other:1"}) {
        auto image = oci::resolve_image(*store, *oci::Reference::parse(name));
        ASSERT_TRUE(image.has_value()) << image.error().to_string();
        auto paths = prepare_snapshots(*store, *image, *snapshots, plan, nullptr);
        ASSERT_TRUE(paths.has_value()) << paths.error().to_string();
        if (app_paths.empty()) {
            app_paths = *paths;
        } else {
            EXPECT_EQ((*paths)[0], app_paths[0]) << "the base layer's snapshot is shared";
        }
    }
    EXPECT_EQ(snapshots->list()->size(), 3u);

    // Flattened rootfs of app:1.
    std::string container = tmp + "/c1";
    ASSERT_EQ(mkdir(container.c_str(), 0700), 0);
    auto flat = build_rootfs(app_paths, container, false, plan);
    ASSERT_TRUE(flat.has_value()) << flat.error().to_string();
    EXPECT_EQ(flat->kind, RootfsPlan::Kind::Flattened);
    EXPECT_EQ(read_file_or_empty(flat->rootfs + "/srv/app"), "a");
    if (!plan.user_namespace) {
        // (In the namespace case it belongs to container uid 100, mode 0640:
        // unreadable from outside, which is the point.)
        EXPECT_EQ(read_file_or_empty(flat->rootfs + "/srv/owned"), "o");
    }
    struct stat st;
    EXPECT_NE(lstat((flat->rootfs + "/etc/os").c_str(), &st), 0) << "whited out";
    ASSERT_EQ(lstat((flat->rootfs + "/srv/owned").c_str(), &st), 0);
    if (plan.privileged) {
        EXPECT_EQ(st.st_uid, 100u);
    } else if (plan.user_namespace) {
        EXPECT_EQ(st.st_uid, plan.mapping.uid_map[1].host_id + 99);
    }
    // Overlay description.
    std::string container2 = tmp + "/c2";
    ASSERT_EQ(mkdir(container2.c_str(), 0700), 0);
    auto ovl = build_rootfs(app_paths, container2, true, plan);
    ASSERT_TRUE(ovl.has_value()) << ovl.error().to_string();
    EXPECT_EQ(ovl->kind, RootfsPlan::Kind::Overlay);
    ASSERT_EQ(ovl->overlay.lowerdirs.size(), 2u);
    EXPECT_EQ(ovl->overlay.lowerdirs[0], app_paths[1]) << "top-most first";
    EXPECT_EQ(ovl->overlay.userxattr, !plan.privileged);
    EXPECT_EQ(lstat(ovl->overlay.upperdir.c_str(), &st), 0);

    // Drop other:1: its top snapshot is unreferenced but still claimed —
    // first by a live lease (a process using it), then by a lease bound to
    // a container directory (a container the daemon runs).
    auto other = oci::resolve_image(*store, *oci::Reference::parse("docker.io/library/other:1"));
    ASSERT_TRUE(other.has_value());
    auto other_chains = image_chain_ids(*other);
    ASSERT_TRUE(store->remove_ref("docker.io/library/other:1").has_value());
    {
        auto held = snapshots->lease(other_chains);
        ASSERT_TRUE(held.has_value()) << held.error().to_string();
        auto kept = prune_snapshots(*store, *snapshots, plan);
        ASSERT_TRUE(kept.has_value()) << kept.error().to_string();
        EXPECT_TRUE(kept->removed.empty()) << "a held lease keeps its snapshots";
        std::string container_dir = tmp + "/c3";
        ASSERT_EQ(mkdir(container_dir.c_str(), 0700), 0);
        ASSERT_TRUE(held->bind_to(container_dir).has_value());
        held = base::Result<SnapshotLease>(SnapshotLease());  // this process lets go
        kept = prune_snapshots(*store, *snapshots, plan);
        ASSERT_TRUE(kept.has_value()) << kept.error().to_string();
        EXPECT_TRUE(kept->removed.empty()) << "a lease bound to an existing dir keeps them";
        EXPECT_EQ(kept->stale_leases, 0u);
        ASSERT_EQ(rmdir(container_dir.c_str()), 0);
    }
    // An interrupted apply left a temporary directory with a file of a
    // subordinate owner (when rootless): prune removes it too.
    std::string leftover = snapshots->root() + "/.tmp-leftover";
    ASSERT_TRUE(run_as_container_root(plan, [&]() -> base::Result<void> {
                    TRY(base::mkdir_p(leftover + "/fs/sub", 0755));
                    TRY(base::write_file(leftover + "/fs/sub/f", "x", 0600));
                    if (plan.privileged || plan.user_namespace) {
                        if (chown((leftover + "/fs/sub/f").c_str(), 100, 100) != 0) {
                            return base::errno_error("chown");
                        }
                    }
                    if (chmod((leftover + "/fs/sub").c_str(), 0500) != 0) {
                        return base::errno_error("chmod");
                    }
                    return base::ok();
                }).has_value());
    // `rmi`'s narrow form only looks at the chains it is given.
    std::set<std::string> unrelated = {chain_ids({base_layer.diff_id})[0]};
    auto narrow = prune_snapshots(*store, *snapshots, plan, &unrelated);
    ASSERT_TRUE(narrow.has_value()) << narrow.error().to_string();
    EXPECT_TRUE(narrow->removed.empty()) << "the base is still needed by app:1";
    EXPECT_EQ(narrow->stale_leases, 1u) << "the lease of the removed directory";
    EXPECT_EQ(lstat(leftover.c_str(), &st), 0) << "the narrow form leaves leftovers";
    auto removed = prune_snapshots(*store, *snapshots, plan);
    ASSERT_TRUE(removed.has_value()) << removed.error().to_string();
    EXPECT_EQ(removed->removed, std::vector<std::string>{other_chains[1]});
    EXPECT_EQ(removed->leftovers_removed, 1u);
    EXPECT_NE(lstat(leftover.c_str(), &st), 0);
    EXPECT_EQ(snapshots->list()->size(), 2u);
    EXPECT_TRUE(snapshots->has(chain_ids({base_layer.diff_id})[0]));

    (void)remove_tree(plan, tmp);
    remove_tree(tmp);
}

TEST(ImageSnapshots, SharedPrunedAndBothRootfsKinds) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "root pass (RootlessImageSnapshots runs unprivileged)";
    }
    auto plan = plan_ownership(RootlessMode::Auto);
    ASSERT_TRUE(plan.has_value());
    shared_snapshots_prune_and_rootfs(*plan);
}

TEST(RootlessImageSnapshots, SharedPrunedAndBothRootfsKinds) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    auto plan = plan_ownership(RootlessMode::Auto);
    ASSERT_TRUE(plan.has_value()) << plan.error().to_string();
    shared_snapshots_prune_and_rootfs(*plan);
}

}  // namespace
}  // namespace locald::layers
