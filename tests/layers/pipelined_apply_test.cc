// PipelinedApply fed as a pull feeds it: blobs reported committed one by
// one, in any order, from a real content store. Snapshots and Flatten mode,
// a layer that never arrives, a config that does not match the manifest —
// as root and, in the Rootless suite, through the container user namespace.
// And the helper processes die with their parent: killing the caller ends
// the helper, killing the helper ends its user-namespace child, even while
// something else keeps the command socket open.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "fs_snapshot.h"
#include "layers/pipelined_apply.h"
#include "oci/media_types.h"
#include "process_util.h"
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

// Waits (bounded) until the Flatten helper has applied layer 0 into `root`:
// its applying process is then past its own setup.
bool layer_zero_applied(const std::string& root) {
    for (int i = 0; i < 600; ++i) {
        if (::access((root + "/srv/owned").c_str(), F_OK) == 0) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
}

// The fds above 2 of process `pid` that lack close-on-exec (from fdinfo's
// octal `flags:` line).
std::vector<std::string> inheritable_fds(pid_t pid) {
    std::vector<std::string> out;
    std::string dir = fmt::format("/proc/{}/fdinfo", pid);
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        std::string name = entry.path().filename().string();
        if (std::stoi(name) <= 2) {
            continue;
        }
        std::ifstream in(entry.path());
        std::string key, value;
        while (in >> key >> value) {
            if (key == "flags:" && (std::stoul(value, nullptr, 8) & O_CLOEXEC) == 0) {
                std::error_code link_ec;
                auto target = std::filesystem::read_symlink(
                    fmt::format("/proc/{}/fd/{}", pid, name), link_ec);
                out.push_back(name + " -> " + target.string());
            }
        }
    }
    EXPECT_FALSE(ec) << dir << ": " << ec.message();
    return out;
}

// The process that applies (the helper, or its child in the user
// namespace) holds no fd a program it might exec would inherit.
void applier_fds_are_close_on_exec(const OwnershipPlan& plan) {
    Fixture f;
    make_image(f);
    std::string root = f.tmp + "/rootfs";
    ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
    PipelinedApply::Options options;
    options.mode = PipelinedApply::Mode::Flatten;
    options.flatten_root = root;
    auto pipeline = PipelinedApply::start(*f.store, plan, options);
    ASSERT_TRUE(pipeline.has_value()) << pipeline.error().to_string();
    pipeline->on_blob(f.manifest, f.manifest.config);
    pipeline->on_blob(f.manifest, f.manifest.layers[0]);
    ASSERT_TRUE(layer_zero_applied(root));
    auto helpers = children_of(::getpid());
    ASSERT_EQ(helpers.size(), 1u);
    pid_t applier = helpers[0];
    if (plan.user_namespace) {
        auto grandchildren = children_of(helpers[0]);
        ASSERT_EQ(grandchildren.size(), 1u);
        applier = grandchildren[0];
    }
    // Less what this test process itself was started with (a shell's or a
    // runner's fds): only what the pipeline made counts.
    std::vector<std::string> leaks;
    auto ours = inheritable_fds(::getpid());
    for (const auto& fd : inheritable_fds(applier)) {
        if (std::find(ours.begin(), ours.end(), fd) == ours.end()) {
            leaks.push_back(fd);
        }
    }
    EXPECT_TRUE(leaks.empty()) << ::testing::PrintToString(leaks);
    pipeline->on_blob(f.manifest, f.manifest.layers[1]);
    auto done = pipeline->finish();
    EXPECT_TRUE(done.has_value()) << done.error().to_string();
    (void)remove_tree(plan, f.tmp);
    remove_tree(f.tmp);
}

// Helper H, its child G in the user namespace: SIGKILL to H must end G,
// although the caller (this test) still holds the command socket open and G
// waits for a layer that never comes.
void killing_the_helper_ends_its_child(const OwnershipPlan& plan) {
    ASSERT_TRUE(plan.user_namespace) << "needs a subordinate id range";
    Fixture f;
    make_image(f);
    std::string root = f.tmp + "/rootfs";
    ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
    PipelinedApply::Options options;
    options.mode = PipelinedApply::Mode::Flatten;
    options.flatten_root = root;
    auto pipeline = PipelinedApply::start(*f.store, plan, options);
    ASSERT_TRUE(pipeline.has_value()) << pipeline.error().to_string();
    pipeline->on_blob(f.manifest, f.manifest.config);
    pipeline->on_blob(f.manifest, f.manifest.layers[0]);
    ASSERT_TRUE(layer_zero_applied(root));
    auto helpers = children_of(::getpid());
    ASSERT_EQ(helpers.size(), 1u);
    auto grandchildren = children_of(helpers[0]);
    ASSERT_EQ(grandchildren.size(), 1u);
    pid_t child = grandchildren[0];
    // The orphaned child is reparented here, to be reaped.
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    ASSERT_EQ(::kill(helpers[0], SIGKILL), 0);
    bool gone = process_ends(child);
    if (!gone) {
        ::kill(child, SIGKILL);  // so that finish() can return
    }
    int status;
    ::waitpid(child, &status, 0);
    ::prctl(PR_SET_CHILD_SUBREAPER, 0);
    EXPECT_TRUE(gone) << "the helper's user-namespace child outlived it";
    auto done = pipeline->finish();
    EXPECT_FALSE(done.has_value());
    (void)remove_tree(plan, f.tmp);
    remove_tree(f.tmp);
}

// The caller C (a process that called start()) is killed while a process it
// forked keeps the command socket open: its helper — and the helper's
// user-namespace child — must end with it. The test is their subreaper, so
// it can reap whatever C leaves.
void killing_the_caller_ends_the_helpers(const OwnershipPlan& plan) {
    Fixture f;
    make_image(f);
    std::string root = f.tmp + "/rootfs";
    ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
    int report[2], hold[2];
    ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(hold, O_CLOEXEC), 0);
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    pid_t caller = ::fork();
    ASSERT_GE(caller, 0);
    if (caller == 0) {
        ::close(report[0]);
        ::close(hold[1]);
        PipelinedApply::Options options;
        options.mode = PipelinedApply::Mode::Flatten;
        options.flatten_root = root;
        auto pipeline = PipelinedApply::start(*f.store, plan, options);
        if (!pipeline) {
            ::_exit(90);
        }
        pipeline->on_blob(f.manifest, f.manifest.config);
        pipeline->on_blob(f.manifest, f.manifest.layers[0]);
        if (!layer_zero_applied(root)) {
            ::_exit(91);
        }
        auto helpers = children_of(::getpid());
        if (helpers.size() != 1) {
            ::_exit(92);
        }
        auto grandchildren = children_of(helpers[0]);
        // A fork of the caller that holds every fd it had, the socket too.
        pid_t keeper = ::fork();
        if (keeper == 0) {
            char byte;
            (void)!::read(hold[0], &byte, 1);
            ::_exit(0);
        }
        std::string pids = fmt::format("{} {} {}\n", keeper, helpers[0],
                                       grandchildren.empty() ? 0 : grandchildren[0]);
        (void)!::write(report[1], pids.data(), pids.size());
        ::pause();
        ::_exit(93);
    }
    ::close(report[1]);
    ::close(hold[0]);
    std::string text;
    char buf[128];
    ssize_t n;
    // One line (the caller's forks hold the pipe too: no EOF to wait for).
    // Bounded: a caller failing early leaves its helper holding the pipe.
    struct pollfd readable = {report[0], POLLIN, 0};
    while (text.find('\n') == std::string::npos && ::poll(&readable, 1, 120000) > 0 &&
           ((n = ::read(report[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))) {
        text.append(buf, static_cast<size_t>(std::max<ssize_t>(n, 0)));
    }
    ::close(report[0]);
    pid_t keeper = 0, helper = 0, child = 0;
    std::istringstream(text) >> keeper >> helper >> child;
    ::kill(caller, SIGKILL);
    int status;
    ::waitpid(caller, &status, 0);
    bool helper_gone = helper > 0 && process_ends(helper);
    bool child_gone = child <= 0 || process_ends(child);
    for (pid_t pid : {helper, child}) {
        if (pid > 0) {
            ::kill(pid, SIGKILL);  // in case; no-ops once gone
        }
    }
    ::close(hold[1]);  // the keeper ends
    for (pid_t pid : {keeper, helper, child}) {
        if (pid > 0) {
            ::waitpid(pid, &status, 0);
        }
    }
    ::prctl(PR_SET_CHILD_SUBREAPER, 0);
    ASSERT_GT(helper, 0) << "the caller failed before reporting: " << text;
    EXPECT_EQ(child > 0, plan.user_namespace) << text;
    EXPECT_TRUE(helper_gone) << "the helper outlived the caller that started it";
    EXPECT_TRUE(child_gone) << "the helper's user-namespace child outlived the caller";
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

TEST(PipelinedApply, KillingTheCallerEndsTheHelper) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "root pass";
    }
    killing_the_caller_ends_the_helpers(plan_or_fail());
}

TEST(RootlessPipelinedApply, KillingTheCallerEndsTheHelperAndItsChild) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    killing_the_caller_ends_the_helpers(plan_or_fail());
}

TEST(RootlessPipelinedApply, KillingTheHelperEndsItsUserNamespaceChild) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    killing_the_helper_ends_its_child(plan_or_fail());
}

TEST(PipelinedApply, TheApplyingProcessHoldsOnlyCloseOnExecFds) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "root pass";
    }
    applier_fds_are_close_on_exec(plan_or_fail());
}

TEST(RootlessPipelinedApply, TheApplyingProcessHoldsOnlyCloseOnExecFds) {
    if (geteuid() == 0) {
        GTEST_SKIP() << "rootless: runs in the unprivileged pass";
    }
    applier_fds_are_close_on_exec(plan_or_fail());
}

}  // namespace
}  // namespace locald::layers
