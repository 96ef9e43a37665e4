// End to end: the detect phase on a builder-shaped busybox rootfs, every
// bin/detect run through ns::Launcher::run as CNB_USER_ID:CNB_GROUP_ID —
// as root (RootCnbDetect) and as the unprivileged test user
// (RootlessCnbDetect; scripts/test's rootless pass).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/unique_fd.h"
#include "base/userns.h"
#include "cnb/buildpack.h"
#include "cnb/detect.h"

namespace locald::cnb {
namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_text(const std::string& path, const std::string& text, mode_t mode = 0644) {
    fs::create_directories(fs::path(path).parent_path());
    {
        std::ofstream out(path);
        out << text;
    }
    ::chmod(path.c_str(), mode);
}

constexpr const char* kHelloWorldDetect = R"(#!/bin/sh
echo "hello-world detect out"
echo "hello-world detect err" >&2
{ echo "$0"; echo "$1"; echo "$2"; id -u; id -g; pwd; } > /layers/hello-world-args
tr '\0' '\n' < /proc/$$/environ | sort > /layers/hello-world-env
cat > "$CNB_BUILD_PLAN_PATH" <<'EOT'
[[provides]]
name = "some-world"
[[requires]]
name = "some-world"
EOT
)";

// Buildpack API 0.7: no CNB_* dir variables, the plan path only as $2.
constexpr const char* kHelloMoonDetect = R"(#!/bin/sh
tr '\0' '\n' < /proc/$$/environ | sort > /layers/hello-moon-env
cat > "$2" <<'EOT'
[[requires]]
name = "some-world"
[requires.metadata]
world = "Earth-616"
EOT
)";

class CnbDetectRun : public ::testing::Test {
protected:
    void SetUpBuilder() {
        if (!fs::exists("/bin/busybox")) {
            GTEST_SKIP() << "/bin/busybox missing (Debian busybox-static)";
        }
        auto mapping = base::container_mapping();
        ASSERT_TRUE(mapping) << mapping.error().to_string();
        if (mapping->single()) {
            GTEST_SKIP() << "no subordinate id range (the builder user 1002 needs one): "
                         << mapping->warning;
        }
        char tmpl[] = "/tmp/cnb-detect-run-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
        ::chmod(m_dir.c_str(), 0755);
        m_root = m_dir + "/rootfs";
        for (const char* dir : {"/bin", "/etc", "/proc", "/dev", "/sys", "/workspace", "/layers",
                                "/platform", "/home/cnb"}) {
            fs::create_directories(m_root + dir);
        }
        fs::create_directories(m_root + "/tmp");
        ::chmod((m_root + "/tmp").c_str(), 01777);
        std::error_code ec;
        fs::copy_file("/bin/busybox", m_root + "/bin/busybox", ec);
        ASSERT_FALSE(ec) << ec.message();
        for (const char* applet : {"sh", "cat", "echo", "id", "pwd", "tr", "sort"}) {
            fs::create_symlink("busybox", m_root + "/bin/" + applet);
        }
        write_text(m_root + "/etc/passwd",
                   "root:x:0:0:root:/root:/bin/sh\ncnb:x:1002:1003::/home/cnb:/bin/sh\n");
        write_text(m_root + "/etc/group", "root:x:0:\ncnb:x:1003:\n");
        write_text(m_root + "/cnb/order.toml", R"([[order]]
[[order.group]]
id = "fails"
version = "1"

[[order]]
[[order.group]]
id = "samples/hello-universe"
version = "0.0.1"
[[order.group]]
id = "broken"
version = "1"
optional = true
[[order.group]]
id = "not-executable"
version = "1"
optional = true
)");
        // Platform 0.15 system buildpacks: `fails` is already in the first
        // group (not added there); `system-post` passes with an empty plan.
        write_text(m_root + "/cnb/system.toml", R"([[system.pre.buildpacks]]
id = "fails"
version = "1"
optional = true
[[system.post.buildpacks]]
id = "system-post"
version = "1"
optional = true
)");
        add_buildpack("system-post", "1", "0.12", "#!/bin/sh\nexit 0\n");
        add_buildpack("samples/hello-world", "0.0.1", "0.10", kHelloWorldDetect);
        add_buildpack("samples/hello-moon", "0.0.1", "0.7", kHelloMoonDetect);
        add_buildpack("fails", "1", "0.10", "#!/bin/sh\nexit 100\n");
        add_buildpack("broken", "1", "0.10", "#!/bin/sh\necho broken >&2\nexit 3\n");
        add_buildpack("not-executable", "1", "0.10", "");
        write_text(m_root + "/cnb/buildpacks/samples_hello-universe/0.0.1/buildpack.toml",
                   R"(api = "0.10"
[buildpack]
id = "samples/hello-universe"
version = "0.0.1"
[[order]]
[[order.group]]
id = "samples/hello-world"
version = "0.0.1"
[[order.group]]
id = "samples/hello-moon"
version = "0.0.1"
)");
        for (const char* dir : {"workspace", "layers", "platform"}) {
            fs::create_directories(m_dir + "/" + dir);
            ::chmod((m_dir + "/" + dir).c_str(), 0777);
        }
        ::chmod((m_dir + "/platform").c_str(), 0755);
        write_text(m_dir + "/platform/env/USERVAR", "from-user");
    }
    void add_buildpack(const std::string& id, const std::string& version, const std::string& api,
                       const std::string& detect) {
        std::string dir = m_root + "/cnb/buildpacks/" + escape_id(id) + "/" + version;
        write_text(dir + "/buildpack.toml", "api = \"" + api + "\"\n[buildpack]\nid = \"" + id +
                                                "\"\nversion = \"" + version + "\"\n");
        if (!detect.empty()) {
            write_text(dir + "/bin/detect", detect, 0755);
            write_text(dir + "/bin/build", "#!/bin/sh\nexit 0\n", 0755);
        }
    }
    void TearDown() override {
        if (m_dir.empty()) {
            return;
        }
        if (::geteuid() == 0) {
            std::error_code ec;
            fs::remove_all(m_dir, ec);
            return;
        }
        // Files the builder user wrote belong to a subordinate id: remove inside the namespace.
        auto mapping = base::container_mapping();
        if (mapping) {
            (void)base::run_in_user_namespace(*mapping, [&]() -> base::Result<int> {
                std::error_code ec;
                fs::remove_all(m_dir, ec);
                return 0;
            });
        }
    }

    void RunsTheSamplesLikeTheLifecycle() {
        LauncherDetectConfig config;
        config.rootfs = m_root;
        config.image_env = {"PATH=/bin", "CNB_USER_ID=1002", "CNB_GROUP_ID=1003",
                            "SECRET=not-for-buildpacks"};
        config.uid = 1002;
        config.gid = 1003;
        config.app_dir = m_dir + "/workspace";
        config.layers_dir = m_dir + "/layers";
        config.platform_dir = m_dir + "/platform";
        config.run_target = {"linux", "amd64", "", {}};
        std::string warnings;
        config.launch.warn = [&](const std::string& w) { warnings += w + "\n"; };
        DetectOptions options;
        options.run_target = config.run_target;
        // <layers>/order.toml, when present, is the order (CNB_ORDER_PATH's
        // default); a failed detection writes no group.toml/plan.toml. This
        // run also has fds 1 and 2 closed (a daemon's): output is still
        // captured, and they are closed again afterwards.
        write_text(m_dir + "/layers/order.toml",
                   "[[order]]\n[[order.group]]\nid = \"broken\"\nversion = \"1\"\n");
        int saved_out = ::dup(1), saved_err = ::dup(2);
        ASSERT_GE(saved_out, 0);
        ASSERT_GE(saved_err, 0);
        ::close(1);
        ::close(2);
        auto failed = run_detect_phase({config, ""}, options);
        bool closed_after = ::fcntl(1, F_GETFD) < 0 && ::fcntl(2, F_GETFD) < 0;
        ::dup2(saved_out, 1);
        ::dup2(saved_err, 2);
        ::close(saved_out);
        ::close(saved_err);
        EXPECT_TRUE(closed_after);
        ASSERT_TRUE(failed) << failed.error().to_string();
        EXPECT_EQ(failed->exit_code, 21);
        EXPECT_EQ(
            failed->tried,
            (std::vector<std::vector<std::string>>{{"fails@1", "broken@1", "system-post@1"}}));
        EXPECT_EQ(failed->runs["broken@1"].output, "broken\n");
        EXPECT_FALSE(fs::exists(m_dir + "/layers/group.toml"));
        EXPECT_FALSE(fs::exists(m_dir + "/layers/plan.toml"));
        fs::remove(m_dir + "/layers/order.toml");

        auto outcome = run_detect_phase({config, ""}, options);
        ASSERT_TRUE(outcome) << outcome.error().to_string();
        std::string log;
        for (const std::string& line : outcome->log) {
            log += line + "\n";
        }
        ASSERT_EQ(outcome->exit_code, 0) << log << warnings;
        std::vector<std::vector<std::string>> tried = {
            {"fails@1", "system-post@1"},
            {"fails@1", "samples/hello-world@0.0.1", "samples/hello-moon@0.0.1", "broken@1",
             "not-executable@1", "system-post@1"},
        };
        EXPECT_EQ(outcome->tried, tried);
        EXPECT_EQ(outcome->runs["fails@1"].code, 100);
        EXPECT_EQ(outcome->runs["broken@1"].code, 3);
        EXPECT_EQ(outcome->runs["broken@1"].output, "broken\n");
        EXPECT_EQ(outcome->runs["not-executable@1"].code, -1);
        const DetectRun& world = outcome->runs["samples/hello-world@0.0.1"];
        EXPECT_EQ(world.output, "hello-world detect out\nhello-world detect err\n");

        EXPECT_EQ(read_text(m_dir + "/layers/group.toml"),
                  "[[group]]\napi = '0.10'\nid = 'samples/hello-world'\nversion = '0.0.1'\n\n"
                  "[[group]]\napi = '0.7'\nid = 'samples/hello-moon'\nversion = '0.0.1'\n\n"
                  "[[group]]\napi = '0.12'\nid = 'system-post'\nversion = '1'\n");
        EXPECT_EQ(read_text(m_dir + "/layers/plan.toml"),
                  "[[entries]]\n\n    [[entries.providers]]\n    id = 'samples/hello-world'\n"
                  "    version = '0.0.1'\n\n    [[entries.requires]]\n    name = 'some-world'\n\n"
                  "    [[entries.requires]]\n    name = 'some-world'\n\n"
                  "        [entries.requires.metadata]\n        world = 'Earth-616'\n");

        // The contract of bin/detect: argv, user, cwd, and exactly the spec's environment.
        EXPECT_EQ(read_text(m_dir + "/layers/hello-world-args"),
                  "/cnb/buildpacks/samples_hello-world/0.0.1/bin/detect\n/platform\n"
                  "/tmp/locald-detect/plan.toml\n1002\n1003\n/workspace\n");
        EXPECT_EQ(read_text(m_dir + "/layers/hello-world-env"),
                  "CNB_BUILDPACK_DIR=/cnb/buildpacks/samples_hello-world/0.0.1\n"
                  "CNB_BUILD_PLAN_PATH=/tmp/locald-detect/plan.toml\n"
                  "CNB_PLATFORM_DIR=/platform\nCNB_TARGET_ARCH=amd64\nCNB_TARGET_OS=linux\n"
                  "HOME=/home/cnb\nPATH=/bin\nUSERVAR=from-user\n");
        EXPECT_EQ(read_text(m_dir + "/layers/hello-moon-env"),
                  "CNB_BUILDPACK_DIR=/cnb/buildpacks/samples_hello-moon/0.0.1\n"
                  "HOME=/home/cnb\nPATH=/bin\nUSERVAR=from-user\n");
        // The plan lived on a private tmpfs: nothing was created in the builder.
        EXPECT_FALSE(fs::exists(m_root + "/tmp/locald-detect"));
    }

    std::string m_dir, m_root;
};

class RootlessCnbDetect : public CnbDetectRun {
protected:
    void SetUp() override {
        if (::geteuid() == 0) {
            GTEST_SKIP() << "runs as the unprivileged test user (scripts/test rootless pass)";
        }
        SetUpBuilder();
    }
};

class RootCnbDetect : public CnbDetectRun {
protected:
    void SetUp() override {
        if (::geteuid() != 0) {
            GTEST_SKIP() << "checks the root path";
        }
        SetUpBuilder();
    }
};

TEST_F(RootlessCnbDetect, BusyboxBuilderRunsTheSamplesLikeTheLifecycle) {
    RunsTheSamplesLikeTheLifecycle();
}

TEST_F(RootCnbDetect, BusyboxBuilderRunsTheSamplesLikeTheLifecycle) {
    RunsTheSamplesLikeTheLifecycle();
}

}  // namespace
}  // namespace locald::cnb
