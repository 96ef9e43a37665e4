// Everything a run starts is found and ended: double-forks, setsid, SIGTERM
// ignorers — in cgroup mode (when this machine allows one) and /proc mode.
#include "host/process_tree.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>

#include <fmt/format.h>
#include <sys/stat.h>

#include "base/child.h"
#include "host/pty.h"
#include "support/real_cgroup.h"
#include "test_util.h"

namespace locald::host {
namespace {

using testing::helper_path;

struct TrackedRun {
    std::unique_ptr<ProcessTree> tree;
    PtyChild child;
};

TrackedRun start(TrackMode mode, std::vector<std::string> argv) {
    TrackedRun run;
    auto tree = ProcessTree::create("test-svc", mode);
    EXPECT_TRUE(tree.has_value());
    run.tree = tree.release_value();
    ExecPlan plan;
    plan.argv = std::move(argv);
    SpawnOptions options;
    options.cgroup_procs_path = run.tree->cgroup_procs_path();
    auto child = spawn_in_pty(plan, options);
    EXPECT_TRUE(child.has_value()) << child.error().to_string();
    run.child = child.release_value();
    run.tree->set_leader(run.child.pid);
    return run;
}

bool contains(const std::vector<pid_t>& pids, pid_t pid) {
    return std::find(pids.begin(), pids.end(), pid) != pids.end();
}

// Kills the run the way the supervisor does, reaping the leader ourselves.
void kill_and_wait_empty(TrackedRun& run) {
    run.tree->signal_all(SIGKILL);
    bool empty = testing::wait_until([&] {
        auto reaped = try_reap(run.child.pid, run.child.pidfd.get());
        if (reaped.has_value() && reaped.value().has_value()) {
            run.tree->leader_reaped();
        }
        run.tree->signal_all(SIGKILL);
        return run.tree->empty();
    });
    EXPECT_TRUE(empty);
}

class ProcessTreeModes : public ::testing::TestWithParam<TrackMode> {
protected:
    void SetUp() override {
        if (GetParam() == TrackMode::Auto &&
            cgroup_support().version == CgroupSupport::Version::None) {
            GTEST_SKIP() << "no writable cgroup hierarchy here: " << cgroup_support().why_not;
        }
    }
};

TEST_P(ProcessTreeModes, DoubleForkedGrandchildIsFoundKilledAndReaped) {
    std::string dir = testing::make_temp_dir();
    TrackedRun run = start(GetParam(), {helper_path(), "double-fork", dir + "/pid"});
    EXPECT_EQ(run.tree->uses_cgroup(), GetParam() == TrackMode::Auto);
    pid_t grandchild = testing::read_pid_file(dir + "/pid");
    ASSERT_GT(grandchild, 0);
    // The middle process exited: the grandchild is re-parented to us.
    ASSERT_TRUE(testing::wait_until([&] {
        auto stat = read_proc_stat(grandchild);
        return stat && stat->ppid == ::getpid();
    }));
    auto members = run.tree->refresh();
    EXPECT_TRUE(contains(members, run.child.pid));
    EXPECT_TRUE(contains(members, grandchild));
    kill_and_wait_empty(run);
    // Not just dead: reaped (no zombie left behind).
    EXPECT_TRUE(testing::wait_until([&] {
        run.tree->refresh();
        return testing::process_gone(grandchild);
    }));
}

TEST_P(ProcessTreeModes, SetsidChildIsFoundAndKilled) {
    std::string dir = testing::make_temp_dir();
    TrackedRun run = start(GetParam(), {helper_path(), "setsid", dir + "/pid"});
    pid_t escaped = testing::read_pid_file(dir + "/pid");
    ASSERT_GT(escaped, 0);
    ASSERT_TRUE(testing::wait_until([&] { return ::getsid(escaped) == escaped; }));
    EXPECT_TRUE(contains(run.tree->refresh(), escaped));
    // The process-group signal alone would miss it: it has its own session.
    kill_and_wait_empty(run);
    EXPECT_TRUE(testing::wait_until([&] { return !testing::process_alive(escaped); }));
}

TEST_P(ProcessTreeModes, IgnoredSigtermNeedsSigkill) {
    TrackedRun run = start(GetParam(), {helper_path(), "ignore-term"});
    std::string out;
    ASSERT_TRUE(testing::wait_until([&] {
        char buffer[256];
        ssize_t n = ::read(run.child.master.get(), buffer, sizeof buffer);
        if (n > 0) {
            out.append(buffer, static_cast<size_t>(n));
        }
        return out.find("ignoring") != std::string::npos;
    }));
    run.tree->signal_all(SIGTERM);
    // SIGTERM is ignored: still alive after the signal was surely delivered.
    ::usleep(50'000);
    EXPECT_TRUE(testing::process_alive(run.child.pid));
    kill_and_wait_empty(run);
}

INSTANTIATE_TEST_SUITE_P(Modes, ProcessTreeModes,
                         ::testing::Values(TrackMode::Auto, TrackMode::ScanOnly),
                         [](const auto& info) {
                             return info.param == TrackMode::Auto ? "Cgroup" : "ProcScan";
                         });

TEST(ProcessTreeCgroup, SetsidAndParentExitCannotEscapeTheCgroup) {
    if (cgroup_support().version == CgroupSupport::Version::None) {
        GTEST_SKIP() << "no writable cgroup hierarchy here: " << cgroup_support().why_not;
    }
    std::string dir = testing::make_temp_dir();
    TrackedRun run = start(TrackMode::Auto, {helper_path(), "setsid-exit", dir + "/pid"});
    pid_t escaped = testing::read_pid_file(dir + "/pid");
    ASSERT_GT(escaped, 0);
    ASSERT_TRUE(testing::wait_until([&] {
        auto r = try_reap(run.child.pid, run.child.pidfd.get());
        return r.has_value() && r.value().has_value();
    }));
    // Leader gone, own session, re-parented: only the cgroup still knows it.
    EXPECT_TRUE(contains(run.tree->refresh(), escaped));
    kill_and_wait_empty(run);
    EXPECT_TRUE(testing::wait_until([&] { return testing::process_gone(escaped); }));
}

TEST(ProcessTreeCgroup, LeftoversOfADeadDaemonAreKilled) {
    const auto& support = cgroup_support();
    if (support.version == CgroupSupport::Version::None) {
        GTEST_SKIP() << "no writable cgroup hierarchy here: " << support.why_not;
    }
    // Fake a dead daemon: a `locald-<pid>` directory for a pid that is gone,
    // with a run cgroup holding a live process.
    pid_t dead = 0;
    {
        auto child = base::Child::spawn([] { return 0; });
        ASSERT_TRUE(child.has_value());
        dead = child->pid();
        ASSERT_TRUE(child->wait().has_value());
    }
    std::string parent_dir = support.parent.substr(0, support.parent.rfind('/'));
    std::string stale = fmt::format("{}/locald-{}", parent_dir, dead);
    ASSERT_EQ(::mkdir(stale.c_str(), 0755), 0) << stale;
    ASSERT_EQ(::mkdir((stale + "/web-1").c_str(), 0755), 0);
    // In a container's cgroup below the run's, as a launcher makes one.
    ASSERT_EQ(::mkdir((stale + "/web-1/locald-web-9").c_str(), 0755), 0);
    ExecPlan plan;
    plan.argv = {"/bin/sleep", "1000"};
    SpawnOptions options;
    options.cgroup_procs_path = stale + "/web-1/locald-web-9/cgroup.procs";
    auto leftover = spawn_in_pty(plan, options);
    ASSERT_TRUE(leftover.has_value()) << leftover.error().to_string();
    // Our own run cgroups are not touched.
    TrackedRun mine = start(TrackMode::Auto, {"/bin/sleep", "1000"});

    EXPECT_EQ(kill_stale_cgroups(), 1u);
    ASSERT_TRUE(testing::wait_until([&] {
        auto r = try_reap(leftover->pid, leftover->pidfd.get());
        return r.has_value() && r.value().has_value();
    }));
    struct stat st {};
    EXPECT_NE(::stat(stale.c_str(), &st), 0);
    EXPECT_TRUE(testing::process_alive(mine.child.pid));
    kill_and_wait_empty(mine);
}

TEST(ProcessTreeCgroup, ASubdividedRunIsStillOneRun) {
    // A container launcher moves itself into a leaf of its run cgroup and
    // puts its container in a limited child beside it (cgroup v2): both are
    // still the run's, ended with it, and their cgroups go with the run's.
    const auto& support = cgroup_support();
    if (support.version != CgroupSupport::Version::V2) {
        GTEST_SKIP() << "needs cgroup v2 run cgroups: " << support.why_not;
    }
    TrackedRun run = start(TrackMode::Auto, {"/bin/sleep", "1000"});
    const std::string dir = run.tree->cgroup_dir();
    const std::string leaf = dir + "/locald-launch-1";
    const std::string container = dir + "/locald-web-1";
    ASSERT_EQ(::mkdir(leaf.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(container.c_str(), 0755), 0);
    ASSERT_TRUE(test::write_text(leaf + "/cgroup.procs", std::to_string(run.child.pid)));
    ExecPlan plan;
    plan.argv = {"/bin/sleep", "1000"};
    SpawnOptions options;
    options.cgroup_procs_path = container + "/cgroup.procs";
    auto payload = spawn_in_pty(plan, options);
    ASSERT_TRUE(payload.has_value()) << payload.error().to_string();

    auto members = run.tree->refresh();
    EXPECT_TRUE(contains(members, run.child.pid));
    EXPECT_TRUE(contains(members, payload->pid));
    kill_and_wait_empty(run);
    // Killed, and reaped by the tree (it is our child and in the run).
    EXPECT_TRUE(testing::wait_until([&] { return testing::process_gone(payload->pid); }));
    run.tree.reset();
    struct stat st {};
    EXPECT_NE(::stat(dir.c_str(), &st), 0) << dir << " is left behind";
}

TEST(ProcessTreeCgroup, ReportsWhatThisMachineAllows) {
    const auto& support = cgroup_support();
    switch (support.version) {
        case CgroupSupport::Version::V2:
            std::printf("cgroup v2 run cgroups under %s\n", support.parent.c_str());
            break;
        case CgroupSupport::Version::V1:
            std::printf("cgroup v1 (pids) run cgroups under %s\n", support.parent.c_str());
            break;
        case CgroupSupport::Version::None:
            GTEST_SKIP() << "no cgroup tracking, /proc scan only: " << support.why_not;
    }
    EXPECT_FALSE(support.parent.empty());
}

TEST(ProcStat, ReadsOurselves) {
    auto stat = read_proc_stat(::getpid());
    ASSERT_TRUE(stat.has_value());
    EXPECT_EQ(stat->ppid, ::getppid());
    EXPECT_EQ(stat->pgrp, ::getpgrp());
    EXPECT_EQ(stat->session, ::getsid(0));
    EXPECT_EQ(stat->state, 'R');
}

}  // namespace
}  // namespace locald::host
