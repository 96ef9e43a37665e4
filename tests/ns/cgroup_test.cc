// Tests for ns/internal/cgroup.h against a fake cgroupfs tree (directories
// and plain files): which hierarchy is chosen, which files get which values,
// and the one warning when nothing applies. The kernel's own refusals
// (EBUSY on subtree_control, …) cannot be faked with plain files; the v1
// path is also exercised for real as root (test_ns_container.py).
#include "ns/internal/cgroup.h"

#include "support/real_cgroup.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace locald::ns::internal {
namespace {

class FakeCgroupfs : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = "/tmp/ns-cgroup-test-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_root = pattern;
        m_host.fs_root = m_root + "/fs";
        m_host.self_cgroup = m_root + "/self_cgroup";
        m_host.is_root = false;
        ::mkdir(m_host.fs_root.c_str(), 0755);
    }
    void TearDown() override {
        std::string cmd = "rm -rf '" + m_root + "'";
        (void)std::system(cmd.c_str());
    }
    void write(const std::string& path, const std::string& text) {
        std::string full = m_root + "/" + path;
        std::string dir = full.substr(0, full.rfind('/'));
        std::string cmd = "mkdir -p '" + dir + "'";
        ASSERT_EQ(std::system(cmd.c_str()), 0);
        std::ofstream(full) << text;
    }
    std::string read(const std::string& path) {
        std::ifstream in(path);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
    // A unified hierarchy at fs/ (pure v2) with our process in /user/app.
    void pure_v2(const std::string& controllers) {
        write("fs/cgroup.controllers", "cpuset cpu io memory pids");
        write("self_cgroup", "0::/user/app\n");
        write("fs/user/app/cgroup.controllers", controllers);
        write("fs/user/app/cgroup.subtree_control", "");
        write("fs/user/app/cgroup.procs", "");
    }
    ContainerSpec limited(const std::string& name) {
        ContainerSpec spec;
        spec.name = name;
        spec.resources.memory_bytes = 64 << 20;
        spec.resources.cpus = 1.5;
        spec.resources.pids = 100;
        return spec;
    }

    std::string m_root;
    CgroupHost m_host;
};

TEST_F(FakeCgroupfs, NoLimitsNoCgroup) {
    pure_v2("cpu memory pids");
    auto plan = prepare_cgroup(ContainerSpec{}, m_host);
    EXPECT_TRUE(plan.v2_dir.empty());
    EXPECT_TRUE(plan.v1_dirs.empty());
    EXPECT_TRUE(plan.warning.empty());
}

TEST_F(FakeCgroupfs, DelegatedV2OwnCgroupGetsAChildWithEveryLimit) {
    pure_v2("cpu memory pids");
    auto support = probe_cgroups(m_host);
    EXPECT_EQ(support.version, "v2");
    EXPECT_EQ(support.v2_own_dir, m_host.fs_root + "/user/app");
    EXPECT_TRUE(support.v2_writable);

    auto plan = prepare_cgroup(limited("web"), m_host);
    std::string dir = m_host.fs_root + "/user/app/locald-web-" + std::to_string(::getpid());
    ASSERT_EQ(plan.v2_dir, dir) << plan.warning;
    EXPECT_TRUE(plan.v1_dirs.empty());
    EXPECT_EQ(plan.memory_events, dir + "/memory.events");
    EXPECT_TRUE(plan.warning.empty());
    EXPECT_EQ(read(m_host.fs_root + "/user/app/cgroup.subtree_control"), "+memory +cpu +pids");
    EXPECT_EQ(read(dir + "/memory.max"), std::to_string(64 << 20));
    EXPECT_EQ(read(dir + "/memory.swap.max"), "0");
    EXPECT_EQ(read(dir + "/cpu.max"), "150000 100000");
    EXPECT_EQ(read(dir + "/pids.max"), "100");
}

TEST_F(FakeCgroupfs, AnExistingCgroupOfTheSameNameIsNotReused) {
    pure_v2("cpu memory pids");
    write("fs/user/app/locald-db-" + std::to_string(::getpid()) + "/memory.max", "");
    auto plan = prepare_cgroup(limited("db"), m_host);
    EXPECT_TRUE(plan.v2_dir.empty());
    EXPECT_NE(plan.warning.find("memory limit (64 MiB) is not applied: creating the cgroup"),
              std::string::npos)
        << plan.warning;
    EXPECT_NE(plan.warning.find("pids limit (100) is not applied"), std::string::npos);
}

TEST_F(FakeCgroupfs, ACallersParentIsUsedAndOnlyMissingControllersEnabled) {
    write("fs/cgroup.controllers", "cpu memory pids");
    write("self_cgroup", "0::/not-ours\n");
    write("fs/daemon/containers/cgroup.controllers", "cpu io memory pids");
    write("fs/daemon/containers/cgroup.subtree_control", "memory");
    ContainerSpec spec;
    spec.name = "api";
    spec.resources.memory_bytes = 1 << 30;
    spec.resources.pids = 64;
    spec.resources.cgroup_parent = m_host.fs_root + "/daemon/containers";
    auto plan = prepare_cgroup(spec, m_host);
    ASSERT_FALSE(plan.v2_dir.empty()) << plan.warning;
    EXPECT_EQ(plan.v2_dir.rfind(spec.resources.cgroup_parent + "/locald-api-", 0), 0u);
    EXPECT_EQ(read(spec.resources.cgroup_parent + "/cgroup.subtree_control"), "+pids");
    EXPECT_EQ(read(plan.v2_dir + "/memory.max"), std::to_string(1 << 30));
    EXPECT_EQ(read(plan.v2_dir + "/memory.swap.max"), "0");
    EXPECT_EQ(read(plan.v2_dir + "/pids.max"), "64");

    ASSERT_TRUE(join_cgroup(plan, 4242));
    EXPECT_EQ(read(plan.v2_dir + "/cgroup.procs"), "4242");

    EXPECT_FALSE(cgroup_oom_killed(plan));
    write(plan.v2_dir.substr(m_root.size() + 1) + "/memory.events",
          "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
    EXPECT_TRUE(cgroup_oom_killed(plan));
}

TEST_F(FakeCgroupfs, AParentWithoutTheControllerIsAClearWarning) {
    write("fs/cgroup.controllers", "cpu memory pids");
    write("self_cgroup", "0::/\n");
    write("fs/daemon/cgroup.controllers", "cpu memory");
    write("fs/daemon/cgroup.subtree_control", "");
    ContainerSpec spec;
    spec.name = "x";
    spec.resources.pids = 10;
    spec.resources.cgroup_parent = m_host.fs_root + "/daemon";
    auto plan = prepare_cgroup(spec, m_host);
    EXPECT_TRUE(plan.v2_dir.empty());
    EXPECT_NE(plan.warning.find("pids limit (10) is not applied: the pids controller is not "
                                "available in the cgroup"),
              std::string::npos)
        << plan.warning;
}

TEST_F(FakeCgroupfs, UndelegatedV2WithoutRootWarnsWithTheFix) {
    pure_v2("cpu memory");  // pids not delegated
    ContainerSpec spec;
    spec.name = "x";
    spec.resources.pids = 10;
    auto plan = prepare_cgroup(spec, m_host);
    EXPECT_TRUE(plan.v2_dir.empty());
    EXPECT_NE(plan.warning.find("Delegate="), std::string::npos) << plan.warning;
}

TEST_F(FakeCgroupfs, HybridHostUsesV1OnlyAsRoot) {
    // v1 controllers at fs/<controller>, an empty unified tree at fs/unified.
    write("fs/unified/cgroup.controllers", "");
    write("fs/unified/user/cgroup.controllers", "");
    write("self_cgroup", "12:pids:/user\n0::/user\n");
    write("fs/memory/memory.limit_in_bytes", "");
    write("fs/memory/cgroup.procs", "");
    write("fs/pids/pids.max", "max");
    write("fs/pids/cgroup.procs", "");
    write("fs/cpu/cgroup.procs", "");
    ContainerSpec spec = limited("job");

    auto rootless = prepare_cgroup(spec, m_host);
    EXPECT_TRUE(rootless.v2_dir.empty());
    EXPECT_TRUE(rootless.v1_dirs.empty());
    EXPECT_NE(rootless.warning.find("cgroup v1"), std::string::npos) << rootless.warning;

    m_host.is_root = true;
    EXPECT_EQ(probe_cgroups(m_host).version, "hybrid");
    auto plan = prepare_cgroup(spec, m_host);
    std::string suffix = "/locald/locald-job-" + std::to_string(::getpid());
    ASSERT_EQ(plan.v1_dirs.size(), 3u) << plan.warning;
    EXPECT_TRUE(plan.v2_dir.empty());
    EXPECT_TRUE(plan.warning.empty()) << plan.warning;
    std::string memory_dir = m_host.fs_root + "/memory" + suffix;
    EXPECT_EQ(plan.memory_events, memory_dir + "/memory.oom_control");
    EXPECT_EQ(read(memory_dir + "/memory.limit_in_bytes"), std::to_string(64 << 20));
    EXPECT_EQ(read(memory_dir + "/memory.memsw.limit_in_bytes"), std::to_string(64 << 20));
    EXPECT_EQ(read(m_host.fs_root + "/cpu" + suffix + "/cpu.cfs_quota_us"), "150000");
    EXPECT_EQ(read(m_host.fs_root + "/cpu" + suffix + "/cpu.cfs_period_us"), "100000");
    EXPECT_EQ(read(m_host.fs_root + "/pids" + suffix + "/pids.max"), "100");
    ASSERT_TRUE(join_cgroup(plan, 77));
    for (const auto& dir : plan.v1_dirs) {
        EXPECT_EQ(read(dir + "/cgroup.procs"), "77") << dir;
    }
    write(memory_dir.substr(m_root.size() + 1) + "/memory.oom_control",
          "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
    EXPECT_TRUE(cgroup_oom_killed(plan));
}

TEST_F(FakeCgroupfs, EachLimitIsAppliedWhereItCanAndTheRestIsNamed) {
    // Delegated cpu and pids but no memory (rootless): two limits apply, the
    // warning names the third and why.
    pure_v2("cpu pids");
    auto plan = prepare_cgroup(limited("api"), m_host);
    std::string dir = m_host.fs_root + "/user/app/locald-api-" + std::to_string(::getpid());
    ASSERT_EQ(plan.v2_dir, dir) << plan.warning;
    EXPECT_EQ(read(m_host.fs_root + "/user/app/cgroup.subtree_control"), "+cpu +pids");
    EXPECT_EQ(read(dir + "/cpu.max"), "150000 100000");
    EXPECT_EQ(read(dir + "/pids.max"), "100");
    EXPECT_FALSE(std::ifstream(dir + "/memory.max").good());
    EXPECT_TRUE(plan.memory_events.empty());
    EXPECT_NE(plan.warning.find("memory limit (64 MiB) is not applied: the memory controller is "
                                "not available in the cgroup `" +
                                m_host.fs_root + "/user/app`"),
              std::string::npos)
        << plan.warning;
    EXPECT_EQ(plan.warning.find("cpu limit"), std::string::npos) << plan.warning;
    EXPECT_EQ(plan.warning.find("pids limit"), std::string::npos) << plan.warning;
}

TEST_F(FakeCgroupfs, RootOnAHybridHostSplitsLimitsBetweenV2AndV1) {
    // pids rebound to the unified hierarchy, memory and cpu still on v1.
    write("fs/unified/cgroup.controllers", "pids");
    write("fs/unified/run/cgroup.controllers", "pids");
    write("fs/unified/run/cgroup.subtree_control", "");
    write("fs/unified/run/cgroup.procs", "");
    write("self_cgroup", "4:memory:/\n0::/run\n");
    write("fs/memory/memory.limit_in_bytes", "");
    write("fs/memory/cgroup.procs", "");
    write("fs/cpu/cgroup.procs", "");
    m_host.is_root = true;
    auto plan = prepare_cgroup(limited("mixed"), m_host);
    EXPECT_TRUE(plan.warning.empty()) << plan.warning;
    std::string name = "locald-mixed-" + std::to_string(::getpid());
    EXPECT_EQ(plan.v2_dir, m_host.fs_root + "/unified/run/" + name);
    EXPECT_EQ(read(plan.v2_dir + "/pids.max"), "100");
    ASSERT_EQ(plan.v1_dirs.size(), 2u);
    EXPECT_EQ(plan.v1_dirs[0], m_host.fs_root + "/memory/locald/" + name);
    EXPECT_EQ(plan.v1_dirs[1], m_host.fs_root + "/cpu/locald/" + name);
    EXPECT_EQ(plan.memory_events, plan.v1_dirs[0] + "/memory.oom_control");
    ASSERT_TRUE(join_cgroup(plan, 99));
    EXPECT_EQ(read(plan.v2_dir + "/cgroup.procs"), "99");
    EXPECT_EQ(read(plan.v1_dirs[1] + "/cgroup.procs"), "99");
}

// The launcher subdividing the run cgroup the daemon started it in, on the
// real kernel as an unprivileged user (tests/support/real_cgroup.h; hugetlb
// stands for memory/cpu/pids, which this CI's hosts bind to cgroup v1).
TEST(CgroupReal, AloneInTheRunCgroupTheLauncherMovesToALeafToEnableControllers) {
    test::RealDelegatedCgroup cgroup;
    if (std::string why = cgroup.create("hugetlb"); !why.empty()) {
        GTEST_SKIP() << why;
    }
    const std::string run = cgroup.dir();
    int result = cgroup.run_in([&] {
        auto enabled = enable_controllers(run, {"hugetlb"}, true);
        if (!enabled) {
            std::fprintf(stderr, "child: %s\n", enabled.error().to_string().c_str());
            return 1;
        }
        std::string leaf = "/locald-launch-" + std::to_string(::getpid());
        if (test::own_v2_cgroup() != cgroup.relative() + leaf) {
            std::fprintf(stderr, "child: in %s\n", test::own_v2_cgroup().c_str());
            return 2;
        }
        if (!test::has_word(test::read_text(run + "/cgroup.subtree_control"), "hugetlb")) {
            return 3;
        }
        // The container's cgroup beside the launcher gets the controller.
        std::string container = run + "/locald-web-1";
        if (::mkdir(container.c_str(), 0755) != 0 ||
            !test::has_word(test::read_text(container + "/cgroup.controllers"), "hugetlb")) {
            return 4;
        }
        return 0;
    });
    EXPECT_EQ(result, 0);
}

TEST(CgroupReal, WithOthersInTheCgroupTheRefusalIsExplained) {
    test::RealDelegatedCgroup cgroup;
    if (std::string why = cgroup.create("hugetlb"); !why.empty()) {
        GTEST_SKIP() << why;
    }
    cgroup.add_bystander();
    const std::string run = cgroup.dir();
    int result = cgroup.run_in([&] {
        auto enabled = enable_controllers(run, {"hugetlb"}, true);
        if (enabled) {
            return 1;
        }
        std::string message = enabled.error().to_string();
        if (message.find("enabling `+hugetlb` in `" + run + "/cgroup.subtree_control`") ==
                std::string::npos ||
            message.find("other processes live in that cgroup") == std::string::npos) {
            std::fprintf(stderr, "child: %s\n", message.c_str());
            return 2;
        }
        return test::own_v2_cgroup() == cgroup.relative() ? 0 : 3;  // did not move
    });
    EXPECT_EQ(result, 0);
}

}  // namespace
}  // namespace locald::ns::internal
