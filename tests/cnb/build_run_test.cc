// End to end: a real build of two busybox-sh buildpacks laid out like a
// builder (/cnb/buildpacks/<esc(id)>/<version>/bin/build), every bin/build
// run through ns::Launcher::run by cnb::launcher_runner, then the computed
// launch run in the container and — Dump Layer — on the host. As the
// unprivileged test user (RootlessCnbBuild; scripts/test's rootless pass)
// and as root (RootCnbBuild).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "base/userns.h"
#include "cnb/build.h"
#include "cnb/launch.h"
#include "cnb_test_util.h"
#include "ns/launcher.h"

namespace locald::cnb {
namespace {

using testing::read_text;
using testing::write_text;
namespace fs = std::filesystem;

// Buildpack API 0.10: a build+launch layer with a tool on its bin/, env
// files of every kind, a cache-only layer, a layer without types, a
// default process.
constexpr const char* kToolsBuild = R"(#!/bin/sh
set -e
{ echo "$0"; echo "$1"; echo "$2"; echo "$3"; id -u; id -g; pwd; } > /workspace/a-args
tr '\0' '\n' < /proc/$$/environ | sort > /workspace/a-env
cat "$3" > /workspace/a-plan
L="$1"
mkdir -p "$L/tools/bin" "$L/tools/env" "$L/tools/env.build" "$L/tools/env.launch/web"
printf '#!/bin/sh\necho "hello $1 from $TOOLS_HOME"\n' > "$L/tools/bin/hello"
chmod 755 "$L/tools/bin/hello"
printf '%s' "$L/tools" > "$L/tools/env/TOOLS_HOME"
printf 'yes' > "$L/tools/env.build/BUILD_ONLY.default"
printf 'web' > "$L/tools/env.launch/web/WEB_ONLY"
printf '[types]\nbuild = true\nlaunch = true\n' > "$L/tools.toml"
mkdir -p "$L/cache-only"
echo data > "$L/cache-only/data"
printf '[types]\ncache = true\n' > "$L/cache-only.toml"
mkdir -p "$L/scratch/env"
printf 'leak' > "$L/scratch/env/LEAK"
printf '[types]\n' > "$L/scratch.toml"
cat > "$L/launch.toml" <<'EOT'
[[processes]]
type = "web"
command = ["hello"]
args = ["world"]
default = true
EOT
)";

// Buildpack API 0.12: sees the first one's build layer (its tool on PATH).
constexpr const char* kSecondBuild = R"(#!/bin/sh
set -e
tr '\0' '\n' < /proc/$$/environ | sort > /workspace/b-env
hello build > /workspace/b-hello
cat "$3" > /workspace/b-plan
)";

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) {
            end = text.size();
        }
        out.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

class CnbBuildRun : public ::testing::Test {
protected:
    void SetUpBuilder() {
        if (!fs::exists("/bin/busybox")) {
            GTEST_SKIP() << "/bin/busybox missing (Debian busybox-static)";
        }
        auto mapping = base::container_mapping();
        ASSERT_TRUE(mapping) << mapping.error().to_string();
        // Without a subordinate range only container root exists (root's
        // case here: 0 → nobody); the build user is then 0, still not host root.
        m_user = mapping->single() ? "0:0" : "1002:1003";
        m_uid = mapping->single() ? "0" : "1002";
        m_gid = mapping->single() ? "0" : "1003";
        char tmpl[] = "/tmp/cnb-build-run-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
        ::chmod(m_dir.c_str(), 0755);
        m_root = m_dir + "/rootfs";
        for (const char* dir : {"/bin", "/etc", "/tmp", "/proc", "/dev", "/sys", "/workspace",
                                "/layers", "/cache", "/platform", "/home/cnb"}) {
            fs::create_directories(m_root + dir);
        }
        ::chmod((m_root + "/tmp").c_str(), 01777);
        fs::copy_file("/bin/busybox", m_root + "/bin/busybox");
        for (const char* applet : {"sh", "cat", "echo", "id", "pwd", "tr", "sort", "mkdir",
                                   "printf", "chmod", "touch"}) {
            fs::create_symlink("busybox", m_root + "/bin/" + applet);
        }
        write_text(m_root + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
        write_text(m_root + "/etc/group", "root:x:0:\n");
        write_text(m_root + "/cnb/buildpacks/examples_tools/1/bin/build", kToolsBuild, 0755);
        write_text(m_root + "/cnb/buildpacks/second/2/bin/build", kSecondBuild, 0755);
        for (const char* dir : {"workspace", "layers", "cache", "platform/env", "scratch"}) {
            fs::create_directories(m_dir + "/" + dir);
            ::chmod((m_dir + "/" + dir).c_str(), 0777);
        }
        write_text(m_dir + "/platform/env/BP_GREETING", "hi");
    }
    void TearDown() override {
        if (m_dir.empty()) {
            return;
        }
        std::error_code ec;
        if (::geteuid() == 0) {
            fs::remove_all(m_dir, ec);
            return;
        }
        // Files the build user wrote belong to a subordinate id.
        auto mapping = base::container_mapping();
        if (mapping) {
            (void)base::run_in_user_namespace(*mapping, [&]() -> base::Result<int> {
                std::error_code inner;
                fs::remove_all(m_dir, inner);
                return 0;
            });
        }
    }

    void BuildAndLaunch() {
        BuildRequest request;
        request.group = {{"examples/tools", "1", "0.10", "https://example.com", false, ""},
                         {"second", "2", "0.12", "", false, ""}};
        request.plan = {{{"examples/tools"}, {{"tools", "version = \"1\"\n"}}}};
        request.layers_dir = m_dir + "/layers";
        request.platform_dir = m_dir + "/platform";
        request.scratch_dir = m_dir + "/scratch";
        request.base_env = {"PATH=/usr/bin:/bin", "HOME=/home/cnb", "JUNK=dropped"};
        request.target = {"linux", "amd64", "", "", ""};
        BuildContainer container;
        container.rootfs.path = m_root;
        container.user = m_user;
        container.app_dir = m_dir + "/workspace";
        container.layers_dir = m_dir + "/layers";
        container.cache_dir = m_dir + "/cache";
        container.platform_dir = m_dir + "/platform";
        container.warn = [](const std::string&) {};
        BuildpackRunner real = launcher_runner(container);
        std::vector<BuildpackInvocation> invocations;
        auto result = run_build(request, [&](const BuildpackInvocation& inv) {
            invocations.push_back(inv);
            return real(inv);
        });
        ASSERT_TRUE(result) << result.error().to_string();
        ASSERT_FALSE(result->failed)
            << result->failed_buildpack << " exited " << result->failed_status;
        ASSERT_EQ(invocations.size(), 2u);
        const std::string ws = m_dir + "/workspace";

        // The bin/build contract, as the buildpack saw it.
        auto args = lines(read_text(ws + "/a-args"));
        ASSERT_EQ(args.size(), 7u) << read_text(ws + "/a-args");
        EXPECT_EQ(args[0], "/cnb/buildpacks/examples_tools/1/bin/build");
        EXPECT_EQ(args[1], "/layers/examples_tools");
        EXPECT_EQ(args[2], "/platform");
        EXPECT_EQ(args[3], invocations[0].argv[3]);
        EXPECT_EQ(args[4], m_uid);
        EXPECT_EQ(args[5], m_gid);
        EXPECT_EQ(args[6], "/workspace");
        EXPECT_NE(read_text(ws + "/a-plan").find("name = 'tools'"), std::string::npos);
        EXPECT_NE(read_text(ws + "/a-plan").find("version = '1'"), std::string::npos);
        EXPECT_EQ(read_text(ws + "/b-plan").find("tools"), std::string::npos);

        // Exactly the computed environment, nothing added by the launcher.
        for (size_t i = 0; i < 2; ++i) {
            std::vector<std::string> want = invocations[i].env;
            std::sort(want.begin(), want.end());
            EXPECT_EQ(lines(read_text(ws + (i == 0 ? "/a-env" : "/b-env"))), want);
        }
        EnvMap b = env_from_list(lines(read_text(ws + "/b-env")));
        EXPECT_EQ(b["PATH"], "/layers/examples_tools/tools/bin:/usr/bin:/bin");
        EXPECT_EQ(b["TOOLS_HOME"], "/layers/examples_tools/tools");
        EXPECT_EQ(b["BUILD_ONLY"], "yes");
        EXPECT_EQ(b["BP_GREETING"], "hi");
        EXPECT_EQ(b["CNB_EXEC_ENV"], "production");
        EXPECT_EQ(b["HOME"], "/home/cnb");
        EXPECT_EQ(b.count("WEB_ONLY"), 0u);
        EXPECT_EQ(b.count("LEAK"), 0u);
        EXPECT_EQ(b.count("JUNK"), 0u);
        EXPECT_EQ(read_text(ws + "/b-hello"), "hello build from /layers/examples_tools/tools\n");

        const std::string layers = m_dir + "/layers";
        EXPECT_TRUE(fs::exists(layers + "/examples_tools/scratch.ignore/env/LEAK"));
        EXPECT_FALSE(fs::exists(layers + "/examples_tools/scratch"));
        auto metadata =
            parse_metadata_toml(read_text(layers + "/config/metadata.toml"), "metadata.toml");
        ASSERT_TRUE(metadata) << metadata.error().to_string();
        EXPECT_EQ(metadata->default_process, "web");

        // The launch, from the build's own layers dir: only launch layers.
        LaunchRequest launch;
        launch.layers_dir = layers;
        launch.layers = LayerSelection::LaunchLayersOnly;
        launch.base_env = {"PATH=/usr/bin:/bin", "CNB_PLATFORM_API=0.12"};
        auto plan = compute_launch(launch);
        ASSERT_TRUE(plan) << plan.error().to_string();
        EXPECT_EQ(plan->env, (EnvMap{{"PATH", "/layers/examples_tools/tools/bin:/usr/bin:/bin"},
                                     {"TOOLS_HOME", "/layers/examples_tools/tools"},
                                     {"WEB_ONLY", "web"}}));
        EXPECT_EQ(plan->argv, (std::vector<std::string>{"hello", "world"}));
        EXPECT_EQ(plan->working_dir, "/workspace");

        // …run in the container with exactly that env (stdout into a file).
        ns::ContainerSpec spec;
        spec.name = "cnb-launch";
        spec.rootfs.path = m_root;
        spec.user = m_user;
        spec.exact_env = true;
        spec.env = env_to_list(plan->env);
        spec.cwd = plan->working_dir;
        spec.args = {"/bin/sh", "-c", "exec \"$@\" > /workspace/launched", "sh"};
        spec.args.insert(spec.args.end(), plan->argv.begin(), plan->argv.end());
        spec.mounts.push_back({ns::MountKind::Bind, ws, "/workspace", false, {}});
        spec.mounts.push_back({ns::MountKind::Bind, layers, "/layers", true, {}});
        auto status = ns::Launcher::run(spec, {.warn = [](const std::string&) {}});
        ASSERT_TRUE(status) << status.error().to_string();
        EXPECT_EQ(*status, 0);
        EXPECT_EQ(read_text(ws + "/launched"), "hello world from /layers/examples_tools/tools\n");

        // …and on the host (Dump Layer): the same process with host paths.
        launch.host_mode = true;
        launch.host_app_dir = ws;
        plan = compute_launch(launch);
        ASSERT_TRUE(plan) << plan.error().to_string();
        EXPECT_EQ(plan->executable, layers + "/examples_tools/tools/bin/hello");
        EXPECT_EQ(plan->env["TOOLS_HOME"], layers + "/examples_tools/tools");
        EXPECT_EQ(plan->working_dir, ws);
        std::string out = m_dir + "/scratch/host-out";
        pid_t pid = ::fork();
        if (pid == 0) {
            int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            ::dup2(fd, 1);
            if (::chdir(plan->working_dir.c_str()) != 0) {
                ::_exit(126);
            }
            std::vector<char*> argv;
            for (auto& arg : plan->argv) {
                argv.push_back(arg.data());
            }
            argv.push_back(nullptr);
            std::vector<std::string> env = env_to_list(plan->env);
            std::vector<char*> envp;
            for (auto& entry : env) {
                envp.push_back(entry.data());
            }
            envp.push_back(nullptr);
            ::execve(plan->executable.c_str(), argv.data(), envp.data());
            ::_exit(127);
        }
        int wstatus = 0;
        ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
        ASSERT_TRUE(WIFEXITED(wstatus));
        EXPECT_EQ(WEXITSTATUS(wstatus), 0);
        EXPECT_EQ(read_text(out), "hello world from " + layers + "/examples_tools/tools\n");
    }

    std::string m_dir, m_root, m_user, m_uid, m_gid;
};

class RootlessCnbBuild : public CnbBuildRun {
protected:
    void SetUp() override {
        if (::geteuid() == 0) {
            GTEST_SKIP() << "runs as the unprivileged test user (scripts/test rootless pass)";
        }
        SetUpBuilder();
    }
};

class RootCnbBuild : public CnbBuildRun {
protected:
    void SetUp() override {
        if (::geteuid() != 0) {
            GTEST_SKIP() << "checks the root path";
        }
        SetUpBuilder();
    }
};

TEST_F(RootlessCnbBuild, TwoBuildpacksBuildThroughTheLauncherAndTheLaunchEnvRunsBothWays) {
    BuildAndLaunch();
}

TEST_F(RootCnbBuild, TwoBuildpacksBuildThroughTheLauncherAndTheLaunchEnvRunsBothWays) {
    BuildAndLaunch();
}

}  // namespace
}  // namespace locald::cnb
