// cnb::provision end to end as the unprivileged test user (scripts/test's
// rootless pass): a busybox builder (the fixture pattern of
// detect_run_test.cc / build_run_test.cc) is packed as a one-layer image
// into a private store (layers::write_layer_from_dir), then provisioned:
// detect, build through ns::Launcher, the dump (launch layers only, app
// without .git, files owned by the user), reuse when unchanged, a rebuild
// when build.env changes, the detect error text, and dump_launch's host
// process run for real.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "base/userns.h"
#include "cnb/provision.h"
#include "cnb_test_util.h"
#include "layers/tar_writer.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/store.h"

namespace locald::cnb {
namespace {

using testing::read_text;
using testing::write_text;
namespace fs = std::filesystem;

constexpr const char* kDetect = R"(#!/bin/sh
[ -f app.txt ] && exit 0
echo "no app.txt here"
exit 100
)";

constexpr const char* kBuild = R"(#!/bin/sh
set -e
if [ "$BP_MODE" = fail ]; then echo "mode fail requested"; exit 7; fi
if [ -n "$BP_EVIL" ]; then
  E="/layers$BP_EVIL"
  mkdir -p "$E/run/bin"
  printf inside > "$E/run/bin/which"
  printf '[types]\nlaunch = true\n' > "$E/run.toml"
  printf '[[processes]]\ntype = "cli"\ncommand = ["which"]\ndefault = true\n' > "$E/launch.toml"
  cd /
  rm -rf "$1"
  ln -s "$BP_EVIL" "$1"
  exit 0
fi
L="$1/run"
mkdir -p "$L/bin" "$L/env.launch"
printf '#!/bin/sh\necho "run $1 $RUN_HOME $BP_MODE"\n' > "$L/bin/runme"
chmod 4755 "$L/bin/runme"
printf '%s' "$L" > "$L/env.launch/RUN_HOME"
printf '[types]\nlaunch = true\n' > "$1/run.toml"
mkdir -p "$1/tmp-only"
printf '[types]\nbuild = true\n' > "$1/tmp-only.toml"
printf '%s' "$BP_MODE" > built-mode
chmod 600 built-mode
printf '[[processes]]\ntype = "cli"\ncommand = ["runme"]\nargs = ["x"]\ndefault = true\n' > "$1/launch.toml"
)";

class RootlessCnbProvision : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() == 0) {
            GTEST_SKIP() << "runs as the unprivileged test user (scripts/test rootless pass)";
        }
        if (!fs::exists("/bin/busybox")) {
            GTEST_SKIP() << "/bin/busybox missing (Debian busybox-static)";
        }
        char tmpl[] = "/tmp/cnb-provision-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
        m_home = m_dir + "/home";
        ::setenv("LOCALD_HOME", m_home.c_str(), 1);
        const std::string root = m_dir + "/builder";
        for (const char* dir : {"/bin", "/etc", "/tmp", "/home/cnb"}) {
            fs::create_directories(root + dir);
        }
        ::chmod((root + "/tmp").c_str(), 01777);
        ::chmod((root + "/home/cnb").c_str(), 0777);
        fs::copy_file("/bin/busybox", root + "/bin/busybox");
        for (const char* applet : {"sh", "cat", "echo", "mkdir", "printf", "chmod", "test", "["}) {
            fs::create_symlink("busybox", root + "/bin/" + applet);
        }
        write_text(root + "/etc/passwd",
                   "root:x:0:0::/root:/bin/sh\ncnb:x:1002:1003::/home/cnb:/bin/sh\n");
        write_text(root + "/cnb/order.toml",
                   "[[order]]\n[[order.group]]\nid = \"t/run\"\nversion = \"1\"\n");
        const std::string bp = root + "/cnb/buildpacks/t_run/1";
        write_text(bp + "/buildpack.toml",
                   "api = \"0.10\"\n[buildpack]\nid = \"t/run\"\nversion = \"1\"\n"
                   "[[targets]]\nos = \"linux\"\n");
        write_text(bp + "/bin/detect", kDetect, 0755);
        write_text(bp + "/bin/build", kBuild, 0755);
        StoreBuilder(root);
        m_app = m_dir + "/app";
        write_text(m_app + "/app.txt", "app\n");
        write_text(m_app + "/.git/HEAD", "ref\n");
    }
    void TearDown() override {
        ::unsetenv("LOCALD_HOME");
        if (m_dir.empty()) {
            return;
        }
        auto mapping = base::container_mapping();
        if (mapping) {
            (void)base::run_in_user_namespace(*mapping, [&]() -> base::Result<int> {
                std::error_code ec;
                fs::remove_all(m_dir, ec);
                return 0;
            });
        }
        std::error_code ec;
        fs::remove_all(m_dir, ec);
    }

    void StoreBuilder(const std::string& root) {
        auto store = oci::ContentStore::open(m_home + "/data");
        ASSERT_TRUE(store) << store.error().to_string();
        const std::string tar = m_dir + "/layer.tar.gz";
        int fd = ::open(tar.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ASSERT_GE(fd, 0);
        layers::TarWriterOptions options;
        options.uid = 0;
        options.gid = 0;
        auto layer = layers::write_layer_from_dir(root, fd, options);
        ::close(fd);
        ASSERT_TRUE(layer) << layer.error().to_string();
        ASSERT_TRUE(store->write_blob(read_text(tar)));
        std::string labels =
            R"({"io.buildpacks.builder.metadata":"{\"buildpacks\":[{\"id\":\"t/run\",\"version\":\"1\"}]}"})";
        std::string config = fmt::format(
            R"({{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/bin","CNB_USER_ID=1002","CNB_GROUP_ID=1003"],"Labels":{}}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}})",
            labels, layer->diff_id);
        auto config_digest = store->write_blob(config);
        ASSERT_TRUE(config_digest);
        std::string manifest = fmt::format(
            R"({{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}]}})",
            oci::media_types::kOciManifest, oci::media_types::kOciConfig, config_digest->str(),
            config.size(), layer->digest, layer->size);
        auto manifest_digest = store->write_blob(manifest);
        ASSERT_TRUE(manifest_digest);
        oci::RefRecord record;
        record.name = "registry.test/builder:1";
        record.target.media_type = std::string(oci::media_types::kOciManifest);
        record.target.digest = *manifest_digest;
        record.target.size = static_cast<int64_t>(manifest.size());
        record.source = "test";
        ASSERT_TRUE(store->set_ref(record));
    }

    ProvisionRequest Request() {
        ProvisionRequest request;
        request.project = "my proj";  // not a plain name: made path-safe
        request.service = "cli";
        request.app_dir = m_app;
        request.data_dir = m_home + "/data";
        request.builder = "registry.test/builder:1";
        request.env = {{"BP_MODE", "one"}};
        request.offline = true;
        request.on_progress = [this](std::string_view phase, std::string_view message) {
            m_progress += fmt::format("{}: {}\n", phase, message);
        };
        return request;
    }

    std::string m_dir, m_home, m_app, m_progress;
};

TEST_F(RootlessCnbProvision, BuildsDumpsReusesAndRunsOnTheHost) {
    auto result = provision(Request());
    ASSERT_TRUE(result) << result.error().to_string() << "\n" << m_progress;
    EXPECT_FALSE(result->reused);
    EXPECT_EQ(result->group, std::vector<std::string>{"t/run@1"});
    EXPECT_NE(result->dump_dir.find("/provisioned/my_proj-"), std::string::npos)
        << result->dump_dir;
    EXPECT_NE(m_progress.find("detect: group: t/run@1"), std::string::npos) << m_progress;
    const std::string layer = result->layers_dir + "/t_run/run";
    struct stat st {};
    ASSERT_EQ(::stat((layer + "/bin/runme").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, ::geteuid());
    EXPECT_EQ(st.st_mode & 07777, 0755u) << "setuid bit dropped";
    EXPECT_TRUE(fs::exists(result->layers_dir + "/t_run/run.toml"));
    EXPECT_FALSE(fs::exists(result->layers_dir + "/t_run/tmp-only"));
    EXPECT_FALSE(fs::exists(result->app_dir + "/.git"));
    // A 0600 file the build user wrote is the user's own in the dump.
    EXPECT_EQ(read_text(result->app_dir + "/built-mode"), "one");

    auto again = provision(Request());
    ASSERT_TRUE(again) << again.error().to_string();
    EXPECT_TRUE(again->reused);
    EXPECT_EQ(again->key, result->key);
    // The builder as the container of mode "container", also when reused.
    for (const auto* r : {&*result, &*again}) {
        EXPECT_TRUE(fs::exists(r->builder_rootfs + "/bin/busybox")) << r->builder_rootfs;
        EXPECT_EQ(r->builder_env,
                  (std::vector<std::string>{"PATH=/bin", "CNB_USER_ID=1002", "CNB_GROUP_ID=1003"}));
        EXPECT_EQ(r->uid, result->uid);
        EXPECT_EQ(r->gid, result->gid);
    }
    // Its process in container form: /layers and /workspace paths, over the
    // builder's Env, argv[0] left for the container's PATH.
    auto boxed = container_launch(*again, "", {});
    ASSERT_TRUE(boxed) << boxed.error().to_string();
    EXPECT_EQ(boxed->process_type, "cli");
    EXPECT_EQ(boxed->executable, "");
    EXPECT_EQ(boxed->argv.front(), "runme");
    EXPECT_EQ(boxed->working_dir, "/workspace");
    EXPECT_EQ(boxed->env["RUN_HOME"], "/layers/t_run/run");
    EXPECT_EQ(boxed->env["PATH"], "/layers/t_run/run/bin:/bin");
    EXPECT_EQ(boxed->env["CNB_USER_ID"], "1002");

    auto changed_request = Request();
    changed_request.env = {{"BP_MODE", "two"}};
    auto changed = provision(changed_request);
    ASSERT_TRUE(changed) << changed.error().to_string();
    EXPECT_FALSE(changed->reused);
    EXPECT_NE(changed->key, result->key);
    EXPECT_EQ(read_text(changed->app_dir + "/built-mode"), "two");

    auto stored = read_provisioned(m_home + "/data", "my proj", "cli");
    ASSERT_TRUE(stored) << stored.error().to_string();
    EXPECT_EQ(stored->key, changed->key);
    auto plan = dump_launch(*stored, "", {}, {"PATH=/usr/bin:/bin", "KEEP=me"});
    ASSERT_TRUE(plan) << plan.error().to_string();
    EXPECT_EQ(plan->process_type, "cli");
    EXPECT_EQ(plan->executable, layer + "/bin/runme");
    EXPECT_EQ(plan->working_dir, stored->app_dir);
    EXPECT_EQ(plan->env["RUN_HOME"], layer);
    EXPECT_EQ(plan->env["KEEP"], "me");
    EXPECT_EQ(plan->env["PATH"], layer + "/bin:/usr/bin:/bin");

    // The process, run on the host.
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(fds[1], 1);
        if (::chdir(plan->working_dir.c_str()) != 0) {
            ::_exit(126);
        }
        std::vector<char*> argv;
        for (auto& arg : plan->argv) {
            argv.push_back(arg.data());
        }
        argv.push_back(nullptr);
        auto env = env_to_list(plan->env);
        env.push_back("BP_MODE=host");
        std::vector<char*> envp;
        for (auto& entry : env) {
            envp.push_back(entry.data());
        }
        envp.push_back(nullptr);
        ::execve(plan->executable.c_str(), argv.data(), envp.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    std::string out;
    char buffer[256];
    ssize_t n;
    while ((n = ::read(fds[0], buffer, sizeof buffer)) > 0) {
        out.append(buffer, static_cast<size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_EQ(out, "run x " + layer + " host\n");
}

TEST_F(RootlessCnbProvision, FailingDetectNamesTheBuildpackAndItsOutput) {
    fs::remove(m_app + "/app.txt");
    write_text(m_app + "/other", "x");
    auto result = provision(Request());
    ASSERT_FALSE(result);
    std::string text = result.error().to_string();
    EXPECT_NE(text.find("service cli: detect: no buildpack group passed"), std::string::npos)
        << text;
    EXPECT_NE(text.find("t/run@1 exited 100"), std::string::npos) << text;
    EXPECT_NE(text.find("no app.txt here"), std::string::npos) << text;
    EXPECT_FALSE(read_provisioned(m_home + "/data", "my proj", "cli"));
}

TEST_F(RootlessCnbProvision, FailingBuildNamesTheBuildpackAndKeepsThePreviousDump) {
    auto first = provision(Request());
    ASSERT_TRUE(first) << first.error().to_string();
    auto request = Request();
    request.env = {{"BP_MODE", "fail"}};
    auto result = provision(request);
    ASSERT_FALSE(result);
    std::string text = result.error().to_string();
    EXPECT_NE(text.find("service cli: build: buildpack t/run@1 exited 7"), std::string::npos)
        << text;
    EXPECT_NE(text.find("mode fail requested"), std::string::npos) << text;
    EXPECT_NE(m_progress.find("build: mode fail requested"), std::string::npos) << m_progress;
    auto stored = read_provisioned(m_home + "/data", "my proj", "cli");
    ASSERT_TRUE(stored) << stored.error().to_string();
    EXPECT_EQ(stored->key, first->key);
    EXPECT_EQ(read_text(stored->app_dir + "/built-mode"), "one");
}

TEST(RootCnbProvision, RefusedWithAReasonInsteadOfPermissionDenied) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "checks the root path";
    }
    ProvisionRequest request;
    request.project = "p";
    request.service = "web";
    request.app_dir = "/nonexistent";
    request.data_dir = "/nonexistent";
    request.builder = "registry.test/builder:1";
    auto result = provision(request);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind(), base::ErrorKind::Unsupported);
    EXPECT_NE(result.error().to_string().find("provisioning as root is not supported"),
              std::string::npos)
        << result.error().to_string();
}

// A buildpack replaces its own `<layers>/<id>` dir with a symlink to an
// absolute path: inside the layers dir it names a tree the buildpack made,
// on the host a tree it must never reach (here one with "outside" in it).
TEST_F(RootlessCnbProvision, ASymlinkedBuildpackDirIsReadInsideTheLayersDirOnly) {
    const std::string evil = m_dir + "/evil";
    write_text(evil + "/run/bin/which", "outside");
    write_text(evil + "/run.toml", "[types]\nlaunch = true\n");
    auto request = Request();
    request.env = {{"BP_MODE", "one"}, {"BP_EVIL", evil}};
    auto result = provision(request);
    if (result) {
        EXPECT_EQ(read_text(result->layers_dir + "/t_run/run/bin/which"), "inside");
    }
    auto stored = read_provisioned(m_home + "/data", "my proj", "cli");
    if (stored) {
        EXPECT_NE(read_text(stored->layers_dir + "/t_run/run/bin/which"), "outside");
    }
    EXPECT_TRUE(result || !stored) << "a failed provision left a dump";
    if (!result) {
        ADD_FAILURE() << "expected the build to pass (confined reads): "
                      << result.error().to_string();
    }
}

TEST_F(RootlessCnbProvision, UnknownBuildpackAndBadEnvNameAreRefused) {
    auto request = Request();
    request.buildpacks = {"t/absent"};
    auto result = provision(request);
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().to_string().find("buildpack `t/absent` is not in the builder"),
              std::string::npos)
        << result.error().to_string();
    request = Request();
    request.env = {{"BAD/NAME", "x"}};
    result = provision(request);
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().to_string().find("`BAD/NAME` is not a variable name"),
              std::string::npos);
}

}  // namespace
}  // namespace locald::cnb
