// Rootless tests of ns::Launcher with a real rootfs made from busybox-static:
// they really create namespaces as the unprivileged test user (scripts/test
// runs `*Rootless*` as that user), so they skip as root.
#include "ns/launcher.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "base/userns.h"
#include "ns/internal/cgroup.h"
#include "ns/internal/context.h"

namespace locald::ns {
namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_text(const std::string& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
}

// A busybox rootfs plus a host dir bound at /out for the probe's results.
class LauncherFixture : public ::testing::Test {
protected:
    void SetUpRootfs() {
        if (!fs::exists("/bin/busybox")) {
            GTEST_SKIP() << "/bin/busybox missing (Debian busybox-static)";
        }
        char tmpl[] = "/tmp/ns-launcher-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
        m_root = m_dir + "/rootfs";
        m_out = m_dir + "/out";
        std::error_code ec;
        fs::create_directories(m_root + "/bin", ec);
        fs::create_directories(m_root + "/etc", ec);
        fs::create_directories(m_root + "/tmp", ec);
        // As real images do: the kernel mount points and the bind target exist
        // (container root may not be able to create them when launched by root).
        for (const char* dir : {"/proc", "/dev", "/sys", "/out"}) {
            fs::create_directories(m_root + dir, ec);
        }
        fs::create_directories(m_out, ec);
        ::chmod((m_root + "/tmp").c_str(), 01777);
        fs::copy_file("/bin/busybox", m_root + "/bin/busybox", ec);
        ASSERT_FALSE(ec) << ec.message();
        for (const char* applet : {"sh", "cat", "echo", "id", "ls", "sleep", "hostname", "touch",
                                   "mount", "grep", "kill", "ps", "stat"}) {
            fs::create_symlink("busybox", m_root + "/bin/" + applet, ec);
        }
        write_text(m_root + "/etc/passwd",
                   "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n");
        write_text(m_root + "/etc/group", "root:x:0:\napp:x:1000:\n");
        m_spec.name = "probe";
        m_spec.rootfs.path = m_root;
        m_spec.mounts.push_back({MountKind::Bind, m_out, "/out", false, {}});
        m_spec.env = {"PATH=/bin"};
        ::chmod(m_dir.c_str(), 0755);
        ::chmod(m_out.c_str(), 0777);
    }
    void TearDown() override {
        if (!m_dir.empty() && ::geteuid() == 0) {
            std::error_code ec;
            fs::remove_all(m_dir, ec);
        } else if (!m_dir.empty()) {
            // Files written by mapped ids other than ours are removed inside the namespace.
            auto mapping = base::container_mapping();
            if (mapping) {
                (void)base::run_in_user_namespace(*mapping, [&]() -> base::Result<int> {
                    std::error_code ec;
                    fs::remove_all(m_dir, ec);
                    return 0;
                });
            }
        }
    }
    base::Result<int> run(std::vector<std::string> args) {
        m_spec.args = std::move(args);
        return Launcher::run(m_spec, {.warn = [this](const std::string& w) { m_warnings += w; }});
    }

    std::string m_dir, m_root, m_out;
    std::string m_warnings;
    ContainerSpec m_spec;
};

class RootlessLauncher : public LauncherFixture {
protected:
    void SetUp() override {
        if (::geteuid() == 0) {
            GTEST_SKIP() << "runs as the unprivileged test user (scripts/test rootless pass)";
        }
        SetUpRootfs();
    }
};

// As root the payload still runs in a user namespace, never as host root.
class RootLauncher : public LauncherFixture {
protected:
    void SetUp() override {
        if (::geteuid() != 0) {
            GTEST_SKIP() << "checks the root path";
        }
        SetUpRootfs();
    }
};

TEST_F(RootLauncher, PayloadIsNotHostRoot) {
    auto status = run({"/bin/sh", "-c", "cat /proc/self/uid_map > /out/uid_map; id -u > /out/uid"});
    ASSERT_TRUE(status) << status.error().to_string();
    ASSERT_EQ(*status, 0);
    EXPECT_EQ(read_text(m_out + "/uid"), "0\n");
    std::istringstream map(read_text(m_out + "/uid_map"));
    uint64_t inside = 99, outside = 0, count = 0;
    map >> inside >> outside >> count;
    EXPECT_EQ(inside, 0u);
    EXPECT_NE(outside, 0u) << "container root must not be host root";
}

TEST_F(RootlessLauncher, ExitStatusAndSignalsAre128PlusN) {
    auto status = run({"/bin/sh", "-c", "exit 7"});
    ASSERT_TRUE(status) << status.error().to_string();
    EXPECT_EQ(*status, 7);
    status = run({"/bin/sh", "-c", "kill -KILL $$"});
    ASSERT_TRUE(status) << status.error().to_string();
    EXPECT_EQ(*status, 128 + 9);
}

TEST_F(RootlessLauncher, ProbeSeesTheConfinement) {
    auto status = run({"/bin/sh", "-c",
                       "cat /proc/self/status > /out/status; cat /proc/self/uid_map > /out/uid_map;"
                       " hostname > /out/hostname; ls /proc > /out/proc; id -u > /out/uid"});
    ASSERT_TRUE(status) << status.error().to_string();
    ASSERT_EQ(*status, 0);
    std::string proc_status = read_text(m_out + "/status");
    EXPECT_NE(proc_status.find("CapEff:\t00000000800405fb"), std::string::npos) << proc_status;
    EXPECT_NE(proc_status.find("CapBnd:\t00000000800405fb"), std::string::npos);
    EXPECT_NE(proc_status.find("CapInh:\t0000000000000000"), std::string::npos);
    EXPECT_NE(proc_status.find("CapAmb:\t0000000000000000"), std::string::npos);
    EXPECT_NE(proc_status.find("NoNewPrivs:\t1"), std::string::npos);
    EXPECT_NE(proc_status.find("Seccomp:\t2"), std::string::npos);
    std::istringstream map(read_text(m_out + "/uid_map"));
    uint64_t inside = 99, outside = 0, count = 0;
    map >> inside >> outside >> count;
    EXPECT_EQ(inside, 0u);
    EXPECT_EQ(outside, ::getuid());
    EXPECT_EQ(count, 1u);
    EXPECT_EQ(read_text(m_out + "/hostname"), "probe\n");
    EXPECT_EQ(read_text(m_out + "/uid"), "0\n");
    // Only our init (1) and the payload's processes are visible.
    std::istringstream proc(read_text(m_out + "/proc"));
    std::string entry;
    std::vector<int> pids;
    while (proc >> entry) {
        if (std::isdigit(static_cast<unsigned char>(entry[0]))) {
            pids.push_back(std::stoi(entry));
        }
    }
    ASSERT_FALSE(pids.empty());
    EXPECT_EQ(pids.front(), 1);
    EXPECT_LE(pids.size(), 4u) << read_text(m_out + "/proc");
}

TEST_F(RootlessLauncher, SetupErrorsNameTheStepPathAndErrno) {
    m_spec.mounts.push_back({MountKind::Bind, m_dir + "/does-not-exist", "/x", false, {}});
    auto status = run({"/bin/sh", "-c", "true"});
    ASSERT_FALSE(status);
    EXPECT_NE(status.error().message().find("step `mounts`"), std::string::npos)
        << status.error().message();
    EXPECT_NE(status.error().message().find("does-not-exist"), std::string::npos);
    EXPECT_EQ(status.error().errno_value(), ENOENT);
}

TEST_F(RootlessLauncher, MissingCommandIs127) {
    auto status = run({"no-such-command"});
    ASSERT_FALSE(status);
    EXPECT_EQ(exec_failure_status(status.error()), 127) << status.error().message();
}

TEST_F(RootlessLauncher, ReadOnlyAndReadWriteBinds) {
    std::string ro = m_dir + "/ro";
    fs::create_directories(ro);
    write_text(ro + "/file", "host\n");
    m_spec.mounts.push_back({MountKind::Bind, ro, "/data/ro", true, {}});
    auto status = run({"/bin/sh", "-c",
                       "cat /data/ro/file > /out/read; echo x > /data/ro/file && exit 1;"
                       " echo written > /out/rw"});
    ASSERT_TRUE(status) << status.error().to_string();
    EXPECT_EQ(*status, 0);
    EXPECT_EQ(read_text(m_out + "/read"), "host\n");
    EXPECT_EQ(read_text(ro + "/file"), "host\n");
    EXPECT_EQ(read_text(m_out + "/rw"), "written\n");
}

TEST_F(RootlessLauncher, NonRootUserWritesAsItsMappedId) {
    auto mapping = base::container_mapping();
    ASSERT_TRUE(mapping);
    if (mapping->single()) {
        GTEST_SKIP() << "no subordinate range: " << mapping->warning;
    }
    ::chmod(m_out.c_str(), 0777);
    m_spec.user = "app";
    auto status = run({"/bin/sh", "-c", "id -u > /out/uid; echo $HOME > /out/home; touch /out/f"});
    ASSERT_TRUE(status) << status.error().to_string();
    ASSERT_EQ(*status, 0);
    EXPECT_EQ(read_text(m_out + "/uid"), "1000\n");
    EXPECT_EQ(read_text(m_out + "/home"), "/home/app\n");
    struct stat st;
    ASSERT_EQ(::stat((m_out + "/f").c_str(), &st), 0);
    uint32_t host = 0;
    ASSERT_TRUE(base::map_to_host(mapping->uid_map, 1000, &host));
    EXPECT_EQ(st.st_uid, host);
}

// The shape the CNB lifecycle phases need, through the same entry point and
// no special case: a numeric builder user (CNB_USER_ID/CNB_GROUP_ID, not in
// the image's /etc/passwd), exactly the environment given, cwd /workspace and
// host directories bound at /workspace, /layers, /cache (writable) and
// /platform (read-only).
TEST_F(RootlessLauncher, ACnbPhaseRunsAsTheBuilderUserWithExactlyItsEnvironment) {
    auto mapping = base::container_mapping();
    ASSERT_TRUE(mapping);
    if (mapping->single()) {
        GTEST_SKIP() << "no subordinate range: " << mapping->warning;
    }
    std::map<std::string, std::string> host;
    for (const char* dir : {"workspace", "layers", "cache", "platform"}) {
        host[dir] = m_dir + "/" + dir;
        fs::create_directories(host[dir]);
        ::chmod(host[dir].c_str(), 0777);
        fs::create_directories(m_root + "/" + dir);
    }
    write_text(host["platform"] + "/env", "");
    m_spec.mounts.clear();
    m_spec.mounts.push_back({MountKind::Bind, host["workspace"], "/workspace", false, {}});
    m_spec.mounts.push_back({MountKind::Bind, host["layers"], "/layers", false, {}});
    m_spec.mounts.push_back({MountKind::Bind, host["cache"], "/cache", false, {}});
    m_spec.mounts.push_back({MountKind::Bind, host["platform"], "/platform", true, {}});
    m_spec.user = "1002:1003";
    m_spec.exact_env = true;
    m_spec.env = {"CNB_PLATFORM_API=0.12", "CNB_LAYERS_DIR=/layers", "PATH=/bin"};
    m_spec.cwd = "/workspace";
    auto status = run({"/bin/sh", "-c",
                       "cat /proc/$$/environ > /layers/env; id -u > /layers/ids; "
                       "id -g >> /layers/ids; pwd > /layers/pwd; touch /workspace/built "
                       "/cache/entry; if touch /platform/x 2>/dev/null; then echo writable; "
                       "else echo read-only; fi > /layers/platform"});
    ASSERT_TRUE(status) << status.error().to_string();
    ASSERT_EQ(*status, 0) << m_warnings;
    std::string environ = read_text(host["layers"] + "/env");
    std::vector<std::string> got;
    for (size_t start = 0; start < environ.size();) {
        size_t end = environ.find('\0', start);
        got.push_back(environ.substr(start, end - start));
        start = end == std::string::npos ? environ.size() : end + 1;
    }
    EXPECT_EQ(got, m_spec.env);
    EXPECT_EQ(read_text(host["layers"] + "/ids"), "1002\n1003\n");
    EXPECT_EQ(read_text(host["layers"] + "/pwd"), "/workspace\n");
    EXPECT_EQ(read_text(host["layers"] + "/platform"), "read-only\n");
    uint32_t uid = 0, gid = 0;
    ASSERT_TRUE(base::map_to_host(mapping->uid_map, 1002, &uid));
    ASSERT_TRUE(base::map_to_host(mapping->gid_map, 1003, &gid));
    for (const std::string& file : {host["workspace"] + "/built", host["cache"] + "/entry"}) {
        struct stat st;
        ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
        EXPECT_EQ(st.st_uid, uid) << file;
        EXPECT_EQ(st.st_gid, gid) << file;
    }
}

TEST_F(RootlessLauncher, LimitsWithoutACgroupWarnOnce) {
    m_spec.resources.pids = 64;
    auto status = run({"/bin/sh", "-c", "true"});
    ASSERT_TRUE(status) << status.error().to_string();
    auto support = internal::probe_cgroups();
    if (support.v2_writable && !support.v2_controllers.empty()) {
        GTEST_SKIP() << "this machine delegates cgroup v2: no warning expected";
    }
    EXPECT_NE(m_warnings.find("pids limit (64) is not applied"), std::string::npos) << m_warnings;
}

// The id-map helpers run side by side; a failure of either is reported with
// its command line and output, naming which map. PID 1 (host init) is not
// ours: newgidmap and newuidmap both refuse it.
TEST(RootlessIdMaps, HelperFailuresNameTheMapAndTheHelpersWords) {
    if (::geteuid() == 0) {
        GTEST_SKIP() << "as root the maps are written directly; runs as the test user";
    }
    auto mapping = base::container_mapping();
    ASSERT_TRUE(mapping) << mapping.error().to_string();
    if (mapping->single()) {
        GTEST_SKIP() << "this user has no subordinate range: no helper is used";
    }
    auto written = base::write_id_maps(1, *mapping);
    ASSERT_FALSE(written);
    std::string message = written.error().to_string();
    EXPECT_NE(message.find("writing the gid map: `"), std::string::npos) << message;
    EXPECT_NE(message.find("newgidmap 1 0 "), std::string::npos) << message;
    EXPECT_NE(message.find("failed: "), std::string::npos) << message;
}

}  // namespace
}  // namespace locald::ns
