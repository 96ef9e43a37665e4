// Rootless cases that need the container user namespace (0 → the user,
// 1…N → its /etc/subuid range): owners inside the namespace, snapshots
// mounted by overlayfs with `userxattr` the way the launcher will, and
// removal through the same namespace. They run in the unprivileged pass.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/sys.h"
#include "base/userns.h"
#include "fs_snapshot.h"
#include "layers/rootfs.h"
#include "layers/snapshot_store.h"
#include "layers/unpack.h"
#include "process_util.h"
#include "tar_builder.h"
#include "test_util.h"

namespace locald::layers {
namespace {

using namespace testing;

OwnershipPlan userns_plan_or_skip(bool* skip) {
    auto plan = plan_ownership(RootlessMode::UserNamespace);
    *skip = !plan.has_value();
    return plan.has_value() ? *plan : OwnershipPlan{};
}

uint32_t first_subuid() {
    auto mapping = base::container_mapping();
    for (const auto& m : mapping->uid_map) {
        if (m.container_id == 1) {
            return m.host_id;
        }
    }
    return 0;
}

// A caller killed while its child in the user namespace runs `fn`: the
// child must end with it, not stay blocked (here on a pipe this test keeps
// open) or go on writing. The test is a subreaper, to reap what is left.
TEST(RootlessUserns, TheContainerRootChildDiesWithItsCaller) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    bool skip = false;
    OwnershipPlan plan = userns_plan_or_skip(&skip);
    if (skip) {
        GTEST_SKIP() << "no subordinate id range for this user (scripts/setup-test-user)";
    }
    int block[2], started[2];
    ASSERT_EQ(::pipe2(block, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(started, O_CLOEXEC), 0);
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    pid_t caller = ::fork();
    ASSERT_GE(caller, 0);
    if (caller == 0) {
        ::close(block[1]);
        ::close(started[0]);
        auto ran = run_as_container_root(plan, [&]() -> base::Result<void> {
            (void)!::write(started[1], "s", 1);
            char byte;
            (void)!::read(block[0], &byte, 1);
            return base::ok();
        });
        ::_exit(ran ? 0 : 1);
    }
    ::close(block[0]);
    ::close(started[1]);
    char byte = 0;
    bool in_fn = ::read(started[0], &byte, 1) == 1;  // the child runs `fn`
    ::close(started[0]);
    auto children = children_of(caller);
    ::kill(caller, SIGKILL);
    int status;
    ::waitpid(caller, &status, 0);
    bool gone = children.size() == 1 && process_ends(children[0]);
    ::close(block[1]);  // ends a child that is still there
    for (pid_t child : children) {
        ::waitpid(child, &status, 0);
    }
    ::prctl(PR_SET_CHILD_SUBREAPER, 0);
    ASSERT_TRUE(in_fn);
    ASSERT_EQ(children.size(), 1u);
    EXPECT_TRUE(gone) << "the user-namespace child outlived its caller";
}

TEST(RootlessUserns, OwnersInsideTheNamespaceAndRemovalThroughIt) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    bool skip = false;
    OwnershipPlan plan = userns_plan_or_skip(&skip);
    if (skip) {
        GTEST_SKIP() << "no subordinate id range for this user (scripts/setup-test-user)";
    }
    std::string tmp = make_temp_dir("layers-userns");
    std::string root = tmp + "/root";
    ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
    TarEntry owned = file("owned100", "x", 04750);
    owned.uid = 100;
    owned.gid = 100;
    TarEntry app = dir("app/", 0700);
    app.uid = 999;
    app.gid = 999;
    TarEntry inner = file("app/secret", "s", 0600);
    inner.uid = 999;
    inner.gid = 999;
    std::string blob = build_tar({owned, app, inner}, TarCompression::Gzip);
    auto applied = run_as_container_root(plan, [&]() -> base::Result<void> {
        auto stats = apply_bytes(root, blob);
        if (!stats) {
            return stats.release_error();
        }
        return base::ok();
    });
    ASSERT_TRUE(applied.has_value()) << applied.error().to_string();
    uint32_t base_id = first_subuid();
    ASSERT_NE(base_id, 0u);
    struct stat st;
    ASSERT_EQ(lstat((root + "/owned100").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, base_id + 99);
    EXPECT_EQ(st.st_mode & 07777, 04750u);  // setuid survived the chown
    ASSERT_EQ(lstat((root + "/app").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, base_id + 998);
    // We cannot remove uid-999's 0700 directory ourselves; the namespace can.
    ASSERT_TRUE(remove_tree(plan, root).has_value());
    EXPECT_NE(lstat(root.c_str(), &st), 0);
    remove_tree(tmp);
}

TEST(RootlessUserns, SnapshotsMountAsOverlayWithUserxattr) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    if (!kernel_supports_userns_overlay()) {
        GTEST_SKIP() << "kernel older than 5.11: no overlayfs in a user namespace";
    }
    bool skip = false;
    OwnershipPlan plan = userns_plan_or_skip(&skip);
    if (skip) {
        GTEST_SKIP() << "no subordinate id range for this user";
    }
    std::string tmp = make_temp_dir("layers-userns-ovl");
    std::vector<std::vector<TarEntry>> layers = {
        {dir("d/"), file("d/old", "o"), file("gone", "g"), file("keep", "k")},
        {file(".wh.gone", ""), dir("d/"), file("d/.wh..wh..opq", ""), file("d/new", "n")},
    };
    std::vector<LayerSource> sources;
    for (size_t i = 0; i < layers.size(); i++) {
        std::string blob = build_tar(layers[i], TarCompression::Zstd);
        std::string path = tmp + "/blob" + std::to_string(i);
        FILE* f = fopen(path.c_str(), "w");
        ASSERT_NE(f, nullptr);
        fwrite(blob.data(), 1, blob.size(), f);
        fclose(f);
        sources.push_back(LayerSource{sha256_digest(blob), sha256_digest(build_tar(layers[i])),
                                      [path]() { return base::open_file(path, O_RDONLY); }});
    }
    auto store = SnapshotStore::open(tmp + "/data");
    ASSERT_TRUE(store.has_value());
    std::vector<std::string> paths;
    SnapshotApplyOptions options;
    auto ensured = run_as_container_root(plan, [&]() -> base::Result<void> {
        paths = TRY(store->ensure(sources, options));
        return base::ok();
    });
    ASSERT_TRUE(ensured.has_value()) << ensured.error().to_string();
    paths = {store->fs_path(chain_ids({sources[0].diff_id, sources[1].diff_id})[0]),
             store->fs_path(chain_ids({sources[0].diff_id, sources[1].diff_id})[1])};
    std::string upper = tmp + "/upper";
    std::string work = tmp + "/work";
    std::string merged = tmp + "/merged";
    mkdir(upper.c_str(), 0755);
    mkdir(work.c_str(), 0755);
    mkdir(merged.c_str(), 0755);
    auto mount_spec = describe_overlay(paths, upper, work, true);
    ASSERT_TRUE(mount_spec.has_value());
    EXPECT_NE(mount_spec->options().find("userxattr"), std::string::npos);
    std::string result_file = tmp + "/listing";
    // What the launcher does, in miniature: a mount namespace inside the
    // user namespace, then the described overlay.
    auto mounted = base::run_in_user_namespace(
        plan.mapping,
        [&]() -> base::Result<int> {
            if (mount("overlay", merged.c_str(), mount_spec->type.c_str(), 0,
                      mount_spec->options().c_str()) != 0) {
                return base::errno_error("mount overlay {}", mount_spec->options());
            }
            std::string out;
            for (const char* name : {"gone", "keep", "d/old", "d/new"}) {
                struct stat st;
                out += fmt::format("{}={} ", name,
                                   lstat((merged + "/" + name).c_str(), &st) == 0 ? 1 : 0);
            }
            FILE* f = fopen(result_file.c_str(), "w");
            fputs(out.c_str(), f);
            fclose(f);
            return 0;
        },
        CLONE_NEWNS);
    ASSERT_TRUE(mounted.has_value()) << mounted.error().to_string();
    EXPECT_EQ(*mounted, 0);
    EXPECT_EQ(read_file_or_empty(result_file), "gone=0 keep=1 d/old=0 d/new=1 ");
    (void)remove_tree(plan, tmp + "/data");
    (void)remove_tree(plan, work);
    remove_tree(tmp);
}

}  // namespace
}  // namespace locald::layers
