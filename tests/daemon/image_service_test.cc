#include "daemon/image_service.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "base/event_loop.h"
#include "base/sys.h"
#include "base/temp_dir.h"

namespace locald::daemon {
namespace {

config::CommandLine exec_form(std::vector<std::string> argv) {
    config::CommandLine command;
    command.form = config::CommandLine::Form::Exec;
    command.argv = std::move(argv);
    return command;
}

config::EnvEntry entry(std::string key, std::string value, config::EnvOrigin origin) {
    config::EnvEntry out;
    out.key = std::move(key);
    out.value = std::move(value);
    out.origin = origin;
    return out;
}

struct Fixture {
    base::TempDir dir = base::TempDir::create("locald-image-svc-test").release_value();
    config::ProjectSpec project;
    config::ServiceSpec service;
    ContainerInputs inputs;

    Fixture() {
        project.name = "shop";
        project.dir = dir.path();
        service.name = "db";
        service.kind = config::ServiceKind::Image;
        service.image = "postgres:15";
        inputs.project = &project;
        inputs.service = &service;
        inputs.prepared.defaults.entrypoint = {"/entry.sh"};
        inputs.prepared.defaults.cmd = {"postgres"};
        inputs.prepared.defaults.env = {"PATH=/usr/bin", "A=image", "B=image"};
        inputs.prepared.defaults.working_dir = "/var/lib";
        inputs.prepared.defaults.user = "postgres";
        inputs.prepared.rootfs.path = dir.path() + "/merged";
        inputs.data_dir = dir.path() + "/data";
        inputs.run_dir = dir.path() + "/run";
        ::mkdir(inputs.data_dir.c_str(), 0700);
        inputs.dirs = image_service_dirs(inputs.data_dir, project.name, service.name);
    }
    ns::ContainerSpec spec() {
        auto made = container_spec(inputs);
        EXPECT_TRUE(made) << made.error().to_string();
        return made ? made.release_value() : ns::ContainerSpec{};
    }
};

TEST(ImageServiceSpec, EntrypointAndCmdFollowDocker) {
    Fixture f;
    EXPECT_EQ(f.spec().args, (std::vector<std::string>{"/entry.sh", "postgres"}));
    f.service.command = exec_form({"postgres", "-c", "fsync=off"});
    EXPECT_EQ(f.spec().args,
              (std::vector<std::string>{"/entry.sh", "postgres", "-c", "fsync=off"}));
    // `entrypoint` replaces Entrypoint and drops the image's Cmd…
    f.service.command = {};
    f.service.entrypoint = exec_form({"/bin/true"});
    EXPECT_EQ(f.spec().args, (std::vector<std::string>{"/bin/true"}));
    // …but keeps a `command` given beside it.
    f.service.command = exec_form({"x"});
    EXPECT_EQ(f.spec().args, (std::vector<std::string>{"/bin/true", "x"}));
    // A string command runs under /bin/sh -c.
    f.service.entrypoint = {};
    f.inputs.prepared.defaults.entrypoint = {};
    f.service.command.form = config::CommandLine::Form::Shell;
    f.service.command.shell = "echo $PORT";
    EXPECT_EQ(f.spec().args, (std::vector<std::string>{"/bin/sh", "-c", "echo $PORT"}));
    // Nothing to run at all is an error naming the image.
    f.service.command = {};
    f.inputs.prepared.defaults.cmd = {};
    auto none = container_spec(f.inputs);
    ASSERT_FALSE(none);
    EXPECT_NE(none.error().message().find("postgres:15"), std::string::npos);
}

TEST(ImageServiceSpec, EnvIsImageThenServiceThenInjected) {
    Fixture f;
    f.inputs.env = {
        entry("HOME_SHELL_VAR", "from-the-client", config::EnvOrigin::Environment),
        entry("A", "service", config::EnvOrigin::ServiceEnv),
        entry("C", "dotenv", config::EnvOrigin::DotEnv),
        entry("B", "injected", config::EnvOrigin::Injected),
        entry("PORT", "4000", config::EnvOrigin::Injected),
    };
    f.inputs.notify_socket = "@locald/1/2";
    auto spec = f.spec();
    EXPECT_EQ(spec.env,
              (std::vector<std::string>{"PATH=/usr/bin", "A=service", "B=injected", "C=dotenv",
                                        "PORT=4000", "NOTIFY_SOCKET=@locald/1/2"}));
    // The abstract notify socket is unreachable from another network namespace.
    f.service.container.network = config::NetworkMode::None;
    spec = f.spec();
    EXPECT_EQ(spec.network, ns::NetworkMode::None);
    for (const auto& e : spec.env) {
        EXPECT_NE(e.rfind("NOTIFY_SOCKET=", 0), 0u) << e;
    }
}

TEST(ImageServiceSpec, WorkdirUserHostnameAndDirs) {
    Fixture f;
    auto spec = f.spec();
    EXPECT_EQ(spec.cwd, "/var/lib");
    EXPECT_EQ(spec.user, "postgres");
    EXPECT_EQ(spec.hostname, "db");
    EXPECT_EQ(spec.state_dir, f.inputs.data_dir + "/services/shop/db/state");
    EXPECT_EQ(spec.seccomp_cache_dir, f.inputs.run_dir + "/seccomp");
    f.service.workdir = "/srv";
    f.service.container.user = "1000:1000";
    spec = f.spec();
    EXPECT_EQ(spec.cwd, "/srv");
    EXPECT_EQ(spec.user, "1000:1000");
}

TEST(ImageServiceSpec, HeldUserNamespaceGoesIntoTheSpec) {
    Fixture f;
    EXPECT_EQ(f.spec().user_namespace, "");  // none: the launcher maps its own
    f.inputs.user_namespace = "/proc/42/fd/15";
    auto spec = f.spec();
    EXPECT_EQ(spec.user_namespace, "/proc/42/fd/15");
    auto json = ns::to_json(spec);
    ASSERT_NE(json.find("user_namespace"), nullptr);
    EXPECT_EQ(json.find("user_namespace")->as_string(), "/proc/42/fd/15");
}

TEST(ImageServiceSpec, VolumesNamedAndBind) {
    Fixture f;
    config::VolumeSpec named;
    named.kind = config::VolumeSpec::Kind::Named;
    named.source = "pgdata";
    named.target = "/var/lib/postgresql/data";
    config::VolumeSpec bind;
    bind.kind = config::VolumeSpec::Kind::Bind;
    bind.source = f.project.dir;
    bind.target = "/init";
    bind.read_only = true;
    f.service.container.volumes = {named, bind};
    auto spec = f.spec();
    ASSERT_EQ(spec.mounts.size(), 2u);
    EXPECT_EQ(spec.mounts[0].kind, ns::MountKind::Volume);
    EXPECT_EQ(spec.mounts[0].source, f.inputs.data_dir + "/volumes/shop-pgdata");
    struct stat st;
    EXPECT_EQ(::stat(spec.mounts[0].source.c_str(), &st), 0);
    EXPECT_EQ(spec.mounts[1].kind, ns::MountKind::Bind);
    EXPECT_TRUE(spec.mounts[1].read_only);
    // A bind source that does not exist fails the start, naming it.
    f.service.container.volumes[1].source = f.project.dir + "/missing";
    auto bad = container_spec(f.inputs);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().to_string().find("/missing"), std::string::npos);
}

TEST(ImageServiceDirs, ProjectNamesArePathSafe) {
    auto plain = image_service_dirs("/d", "shop", "web");
    EXPECT_EQ(plain.dir, "/d/services/shop/web");
    EXPECT_EQ(plain.layer, "/d/services/shop/web/layer");
    EXPECT_EQ(plain.spec, "/d/services/shop/web/spec.json");
    auto odd = image_service_dirs("/d", "../my shop", "web");
    EXPECT_EQ(odd.dir.find(".."), std::string::npos) << odd.dir;
    EXPECT_NE(odd.dir, image_service_dirs("/d", "__my_shop", "web").dir);
    EXPECT_EQ(launch_argv("/x/spec.json").back(), "/x/spec.json");
}

TEST(ImageServiceCommand, LinesAndExitStatusComeBackOnTheLoop) {
    auto loop = base::EventLoop::create();
    ASSERT_TRUE(loop);
    std::vector<std::string> lines;
    std::optional<base::ExitStatus> status;
    auto command = InternalCommand::start(
        *loop, {"/bin/sh", "-c", "echo one; echo two >&2; printf three; exit 3"},
        [&](const std::string& line) { lines.push_back(line); },
        [&](base::ExitStatus s) {
            status = s;
            loop->stop();
        });
    ASSERT_TRUE(command) << command.error().to_string();
    ASSERT_TRUE(loop->run());
    ASSERT_TRUE(status);
    EXPECT_EQ(status->code(), 3);
    EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three"}));
}

TEST(ImageServiceCommand, ALeftoverHoldingTheOutputDoesNotHoldTheResult) {
    // A grandchild that keeps stdout open after the command exited: the
    // result still arrives (after the grace), and the leftover is killed.
    auto loop = base::EventLoop::create();
    ASSERT_TRUE(loop);
    std::vector<std::string> lines;
    std::optional<base::ExitStatus> status;
    auto command = InternalCommand::start(
        *loop, {"/bin/sh", "-c", "sleep 600 & echo $!; exit 4"},
        [&](const std::string& line) { lines.push_back(line); },
        [&](base::ExitStatus s) {
            status = s;
            loop->stop();
        });
    ASSERT_TRUE(command) << command.error().to_string();
    // A backstop so that a regression fails instead of hanging the suite.
    loop->add_timer(std::chrono::seconds(30), [&] { loop->stop(); });
    ASSERT_TRUE(loop->run());
    ASSERT_TRUE(status) << "no result while a leftover held the output";
    EXPECT_EQ(status->code(), 4);
    ASSERT_EQ(lines.size(), 1u);
    pid_t leftover = std::stoi(lines[0]);
    bool gone = false;
    for (int i = 0; i < 500 && !gone; ++i) {
        std::string stat;
        if (auto text = base::read_file("/proc/" + lines[0] + "/stat", 4096)) {
            stat = *text;
        }
        gone = stat.empty() || stat.find(") Z") != std::string::npos;
        if (!gone) {
            ::usleep(10000);
        }
    }
    EXPECT_TRUE(gone) << "leftover " << leftover << " still runs";
}

}  // namespace
}  // namespace locald::daemon
