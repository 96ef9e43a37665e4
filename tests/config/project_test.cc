// load_project on real directories: the documented example, defaults, the
// Procfile alone and merged, spellings, ordering.
#include <signal.h>

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "config/spec.h"
#include "test_project.h"

namespace locald::config {
namespace {

using testing::TestProject;
using namespace std::chrono_literals;

// The example of ../shared/design/config.md, verbatim but for the workdir.
const char kExample[] = R"(
[project]
name = "shop"                        # default: the directory name

[env]                                # project-wide
RUST_LOG = "info"

[service.web]                        # host-first: a command
command = "npm run dev"              # string → /bin/sh -c; array → exec'd directly
workdir = "frontend"                 # relative to the project dir
env = { NODE_ENV = "development" }
env_file = [".env.web"]
port = 3000                          # default: a free port is assigned and kept across restarts;
                                     # false = no port
depends_on = { db = "healthy", migrate = "completed_successfully" }   # or ["db"] (= "started")
health_check = { http = "/healthz", interval = "1s", timeout = "2s", retries = 3, start_period = "10s" }
# other probes: { tcp = true }, { exec = "pg_isready" }, { log = "ready to accept" }, { notify = true }
restart = "on-failure"               # "no" | "on-failure" | "always"; default "on-failure"
backoff = { initial = "500ms", max = "30s" }    # exponential, reset after min_uptime
min_uptime = "5s"
max_restarts = 10                    # then the service is "failed"
stop_signal = "SIGTERM"              # any signal name
stop_timeout = "10s"                 # then SIGKILL to the whole process group
replicas = 1

[service.api]                        # CNB, opt-in
build = { builder = "heroku/builder:22", buildpacks = [], env = { BP_X = "1" }, mode = "container" }
# mode = "host" is the Dump Layer mode: provision layers to the host, run on the host
process = "web"                      # CNB process type; default: the builder's default process

[service.db]                         # OCI image, opt-in
image = "postgres:15"
command = ["postgres", "-c", "fsync=off"]    # replaces the image Cmd; `entrypoint` replaces Entrypoint
user = "postgres"
volumes = ["pgdata:/var/lib/postgresql/data", "./initdb:/docker-entrypoint-initdb.d:ro"]
network = "host"                     # "host" (default; ports bind on the host) | "none"
resources = { memory = "512M", cpus = 1.5, pids = 512 }
read_only = false
health_check = { exec = "pg_isready" }

[service.migrate]
command = "./migrate"
restart = "no"
port = false
)";

TEST(Project, LoadsTheDocumentedExample) {
    TestProject dir;
    dir.write("locald.toml", kExample);
    dir.write(".env.web", "WEB_ONLY=1\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_TRUE(loaded.has_value()) << loaded.error().to_string();
    const ProjectSpec& project = loaded.value();
    EXPECT_EQ(project.name, "shop");
    EXPECT_EQ(project.dir, dir.dir());
    ASSERT_EQ(project.services.size(), 4u);
    // File order, not toml++'s key order.
    EXPECT_EQ(project.services[0].name, "web");
    EXPECT_EQ(project.services[1].name, "api");
    EXPECT_EQ(project.services[2].name, "db");
    EXPECT_EQ(project.services[3].name, "migrate");

    const ServiceSpec& web = project.services[0];
    EXPECT_EQ(web.kind, ServiceKind::Host);
    EXPECT_EQ(web.location.to_string(), dir.path("locald.toml") + ":8:1");
    EXPECT_EQ(web.command.form, CommandLine::Form::Shell);
    EXPECT_EQ(web.command.shell, "npm run dev");
    EXPECT_EQ(web.command.to_argv(), (std::vector<std::string>{"/bin/sh", "-c", "npm run dev"}));
    EXPECT_EQ(web.workdir, dir.path("frontend"));
    EXPECT_EQ(web.env_files, std::vector<std::string>{dir.path(".env.web")});
    EXPECT_EQ(web.port.mode, PortSpec::Mode::Pinned);
    EXPECT_EQ(web.port.number, 3000);
    ASSERT_EQ(web.depends_on.size(), 2u);
    EXPECT_EQ(web.depends_on[0].service, "db");
    EXPECT_EQ(web.depends_on[0].condition, DependencyCondition::Healthy);
    EXPECT_EQ(web.depends_on[1].service, "migrate");
    EXPECT_EQ(web.depends_on[1].condition, DependencyCondition::CompletedSuccessfully);
    ASSERT_TRUE(web.health_check.has_value());
    EXPECT_EQ(web.health_check->kind, HealthCheck::Kind::Http);
    EXPECT_EQ(web.health_check->http_path, "/healthz");
    EXPECT_EQ(web.health_check->interval, 1s);
    EXPECT_EQ(web.health_check->timeout, 2s);
    EXPECT_EQ(web.health_check->retries, 3);
    EXPECT_EQ(web.health_check->start_period, 10s);
    EXPECT_EQ(web.restart, RestartPolicy::OnFailure);
    EXPECT_EQ(web.backoff.initial, 500ms);
    EXPECT_EQ(web.backoff.max, 30s);
    EXPECT_EQ(web.min_uptime, 5s);
    EXPECT_EQ(web.max_restarts, 10);
    EXPECT_EQ(web.stop_signal.number, SIGTERM);
    EXPECT_EQ(web.stop_timeout, 10s);
    EXPECT_EQ(web.replicas, 1);
    ASSERT_EQ(web.env.size(), 3u);  // key order
    EXPECT_EQ(web.env[0].key, "NODE_ENV");
    EXPECT_EQ(web.env[1].key, "RUST_LOG");
    EXPECT_EQ(web.env[2].key, "WEB_ONLY");

    const ServiceSpec& api = project.services[1];
    EXPECT_EQ(api.kind, ServiceKind::Build);
    ASSERT_TRUE(api.build.has_value());
    EXPECT_EQ(api.build->builder, "heroku/builder:22");
    EXPECT_TRUE(api.build->buildpacks.empty());
    EXPECT_EQ(api.build->env, (std::vector<std::pair<std::string, std::string>>{{"BP_X", "1"}}));
    EXPECT_EQ(api.build->mode, BuildSpec::Mode::Container);
    EXPECT_EQ(api.process, "web");
    EXPECT_TRUE(api.command.empty());
    EXPECT_EQ(api.workdir, "");  // in a container: the image's own
    EXPECT_FALSE(api.runs_on_host());

    const ServiceSpec& db = project.services[2];
    EXPECT_EQ(db.kind, ServiceKind::Image);
    EXPECT_EQ(db.image, "postgres:15");
    EXPECT_EQ(db.command.form, CommandLine::Form::Exec);
    EXPECT_EQ(db.command.argv, (std::vector<std::string>{"postgres", "-c", "fsync=off"}));
    EXPECT_EQ(db.container.user, "postgres");
    ASSERT_EQ(db.container.volumes.size(), 2u);
    EXPECT_EQ(db.container.volumes[0].kind, VolumeSpec::Kind::Named);
    EXPECT_EQ(db.container.volumes[0].source, "pgdata");
    EXPECT_EQ(db.container.volumes[0].target, "/var/lib/postgresql/data");
    EXPECT_FALSE(db.container.volumes[0].read_only);
    EXPECT_EQ(db.container.volumes[1].kind, VolumeSpec::Kind::Bind);
    EXPECT_EQ(db.container.volumes[1].source, dir.path("initdb"));
    EXPECT_EQ(db.container.volumes[1].target, "/docker-entrypoint-initdb.d");
    EXPECT_TRUE(db.container.volumes[1].read_only);
    EXPECT_EQ(db.container.network, NetworkMode::Host);
    EXPECT_EQ(db.container.resources.memory_bytes, 512ull << 20);
    EXPECT_EQ(db.container.resources.cpus, 1.5);
    EXPECT_EQ(db.container.resources.pids, 512);
    EXPECT_FALSE(db.container.read_only);
    EXPECT_EQ(db.port.mode, PortSpec::Mode::Auto);
    ASSERT_TRUE(db.health_check.has_value());
    EXPECT_EQ(db.health_check->kind, HealthCheck::Kind::Exec);
    EXPECT_EQ(db.health_check->command.shell, "pg_isready");

    const ServiceSpec& migrate = project.services[3];
    EXPECT_EQ(migrate.restart, RestartPolicy::No);
    EXPECT_EQ(migrate.port.mode, PortSpec::Mode::None);

    EXPECT_EQ(project.files,
              (std::vector<std::string>{dir.path("locald.toml"), dir.path(".env.web")}));

    // db and migrate before web, api where it was written.
    auto order = start_order(project);
    ASSERT_EQ(order.size(), 4u);
    EXPECT_EQ(order[0]->name, "api");
    EXPECT_EQ(order[1]->name, "db");
    EXPECT_EQ(order[2]->name, "migrate");
    EXPECT_EQ(order[3]->name, "web");
}

TEST(Project, DefaultsAreTheDocumentedOnes) {
    TestProject dir;
    dir.write("locald.toml", "[service.web]\ncommand = \"run\"\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_TRUE(loaded.has_value()) << loaded.error().to_string();
    const ServiceSpec& web = loaded->services.at(0);
    EXPECT_EQ(loaded->name, std::filesystem::path(dir.dir()).filename().string());
    EXPECT_EQ(web.workdir, dir.dir());
    EXPECT_EQ(web.port.mode, PortSpec::Mode::Auto);
    EXPECT_FALSE(web.health_check.has_value());
    EXPECT_EQ(web.restart, RestartPolicy::OnFailure);
    EXPECT_EQ(web.backoff.initial, 500ms);
    EXPECT_EQ(web.backoff.max, 30s);
    EXPECT_EQ(web.min_uptime, 5s);
    EXPECT_EQ(web.max_restarts, 10);
    EXPECT_EQ(web.stop_signal.name, "SIGTERM");
    EXPECT_EQ(web.stop_signal.number, SIGTERM);
    EXPECT_EQ(web.stop_timeout, 10s);
    EXPECT_EQ(web.replicas, 1);
    EXPECT_TRUE(web.depends_on.empty());
    EXPECT_TRUE(web.env.empty());
    EXPECT_FALSE(web.from_procfile);
}

TEST(Project, HealthCheckDefaults) {
    TestProject dir;
    dir.write("locald.toml", "[service.web]\ncommand = \"run\"\nhealth_check = { tcp = true }\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_TRUE(loaded.has_value()) << loaded.error().to_string();
    const HealthCheck& check = *loaded->services.at(0).health_check;
    EXPECT_EQ(check.kind, HealthCheck::Kind::Tcp);
    EXPECT_EQ(check.interval, 1s);
    EXPECT_EQ(check.timeout, 1s);
    EXPECT_EQ(check.retries, 3);
    EXPECT_EQ(check.start_period, 0s);
    EXPECT_EQ(check.location.to_string(), dir.path("locald.toml") + ":3:16");
}

TEST(Project, EveryProbeKind) {
    TestProject dir;
    dir.write("locald.toml", R"([service.a]
command = "a"
health_check = { log = "ready to accept" }
[service.b]
command = "b"
health_check = { notify = true }
[service.c]
command = "c"
health_check = { exec = ["pg_isready", "-q"] }
[service.d]
command = "d"
health_check = { log = '/listening on \d+/' }
[service.e]
command = "e"
health_check = { log = "unbalanced ( is fine as text" }
)");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_TRUE(loaded.has_value()) << loaded.error().to_string();
    EXPECT_EQ(loaded->services[0].health_check->kind, HealthCheck::Kind::Log);
    EXPECT_EQ(loaded->services[0].health_check->pattern, "ready to accept");
    EXPECT_EQ(loaded->services[1].health_check->kind, HealthCheck::Kind::Notify);
    EXPECT_EQ(loaded->services[2].health_check->kind, HealthCheck::Kind::Exec);
    EXPECT_EQ(loaded->services[2].health_check->command.argv,
              (std::vector<std::string>{"pg_isready", "-q"}));
    EXPECT_EQ(loaded->services[3].health_check->pattern, "/listening on \\d+/");
    EXPECT_EQ(loaded->services[4].health_check->pattern, "unbalanced ( is fine as text");
}

TEST(Project, ServicesSpellingIsAccepted) {
    TestProject dir;
    dir.write("locald.toml",
              "[services.web]\ncommand = \"run\"\n[services.worker]\ncommand = \"w\"\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_TRUE(loaded.has_value()) << loaded.error().to_string();
    ASSERT_EQ(loaded->services.size(), 2u);
    EXPECT_EQ(loaded->services[0].name, "web");
    EXPECT_EQ(loaded->services[1].name, "worker");
}

TEST(Project, BuildSubTableEqualsInlineTable) {
    TestProject a;
    a.write("locald.toml", R"([service.api]
build = { builder = "b:1", buildpacks = ["x", "y"], env = { K = "v" }, mode = "host" }
command = "serve"
)");
    TestProject b;
    b.write("locald.toml", R"([service.api]
command = "serve"

[service.api.build]
builder = "b:1"
buildpacks = ["x", "y"]
env = { K = "v" }
mode = "host"
)");
    auto first = load_project(a.dir(), {});
    auto second = load_project(b.dir(), {});
    ASSERT_TRUE(first.has_value()) << first.error().to_string();
    ASSERT_TRUE(second.has_value()) << second.error().to_string();
    for (const ProjectSpec* project : {&first.value(), &second.value()}) {
        const ServiceSpec& api = project->services.at(0);
        EXPECT_EQ(api.kind, ServiceKind::Build);
        EXPECT_EQ(api.build->builder, "b:1");
        EXPECT_EQ(api.build->buildpacks, (std::vector<std::string>{"x", "y"}));
        EXPECT_EQ(api.build->mode, BuildSpec::Mode::Host);
        EXPECT_EQ(api.command.shell, "serve");
        EXPECT_TRUE(api.runs_on_host());
        EXPECT_EQ(api.workdir, project->dir);  // on the host: a host path
    }
}

TEST(Project, ProcfileAlone) {
    TestProject dir;
    dir.write("Procfile", "web: python -m http.server $PORT\nworker: ./work\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_TRUE(loaded.has_value()) << loaded.error().to_string();
    ASSERT_EQ(loaded->services.size(), 2u);
    const ServiceSpec& web = loaded->services[0];
    EXPECT_EQ(web.name, "web");
    EXPECT_TRUE(web.from_procfile);
    EXPECT_EQ(web.kind, ServiceKind::Host);
    EXPECT_EQ(web.command.form, CommandLine::Form::Shell);
    EXPECT_EQ(web.command.shell, "python -m http.server $PORT");
    EXPECT_EQ(web.port.mode, PortSpec::Mode::Auto);
    EXPECT_EQ(web.workdir, dir.dir());
    EXPECT_EQ(web.location.to_string(), dir.path("Procfile") + ":1");
    EXPECT_EQ(loaded->services[1].port.mode, PortSpec::Mode::None);
    EXPECT_EQ(loaded->files, std::vector<std::string>{dir.path("Procfile")});
}

TEST(Project, ProcfileBesideTomlAddsOnlyMissingServices) {
    TestProject dir;
    dir.write("locald.toml",
              "[service.web]\ncommand = \"toml-web\"\nport = 8080\n"
              "depends_on = [\"worker\"]\n");
    dir.write("Procfile", "web: procfile-web\nworker: procfile-worker\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_TRUE(loaded.has_value()) << loaded.error().to_string();
    ASSERT_EQ(loaded->services.size(), 2u);
    EXPECT_EQ(loaded->services[0].name, "web");
    EXPECT_EQ(loaded->services[0].command.shell, "toml-web");  // the toml wins
    EXPECT_FALSE(loaded->services[0].from_procfile);
    EXPECT_EQ(loaded->services[1].name, "worker");
    EXPECT_EQ(loaded->services[1].command.shell, "procfile-worker");
    EXPECT_TRUE(loaded->services[1].from_procfile);
    EXPECT_EQ(loaded->files,
              (std::vector<std::string>{dir.path("locald.toml"), dir.path("Procfile")}));
}

TEST(Project, EmptyTomlIsAProjectWithoutServices) {
    TestProject dir;
    dir.write("locald.toml", "# nothing yet\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_TRUE(loaded.has_value()) << loaded.error().to_string();
    EXPECT_TRUE(loaded->services.empty());
}

TEST(Project, WorkdirAndPathsAreNormalised) {
    TestProject dir;
    dir.write("locald.toml", R"([service.web]
command = "x"
workdir = "./a/../b/"
env_file = "conf/../web.env"
[service.db]
image = "postgres"
workdir = "/srv//data/"
volumes = ["../outside:/mnt", "/abs/path:/abs:rw", "data.v1:/d"]
)");
    dir.write("web.env", "");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_TRUE(loaded.has_value()) << loaded.error().to_string();
    EXPECT_EQ(loaded->services[0].workdir, dir.path("b"));
    EXPECT_EQ(loaded->services[0].env_files, std::vector<std::string>{dir.path("web.env")});
    const ServiceSpec& db = loaded->services[1];
    EXPECT_EQ(db.workdir, "/srv/data");
    EXPECT_EQ(db.container.volumes[0].source,
              std::filesystem::path(dir.dir()).parent_path().string() + "/outside");
    EXPECT_EQ(db.container.volumes[1].source, "/abs/path");
    EXPECT_FALSE(db.container.volumes[1].read_only);
    EXPECT_EQ(db.container.volumes[2].kind, VolumeSpec::Kind::Named);
    EXPECT_EQ(db.container.volumes[2].source, "data.v1");
}

TEST(Project, PortForms) {
    TestProject dir;
    dir.write("locald.toml",
              "[service.a]\ncommand = \"a\"\nport = true\n"
              "[service.b]\ncommand = \"b\"\nport = 65535\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_TRUE(loaded.has_value()) << loaded.error().to_string();
    EXPECT_EQ(loaded->services[0].port.mode, PortSpec::Mode::Auto);
    EXPECT_EQ(loaded->services[1].port.mode, PortSpec::Mode::Pinned);
    EXPECT_EQ(loaded->services[1].port.number, 65535);
}

TEST(Project, NeitherFileIsAClearNotFound) {
    TestProject dir;
    auto loaded = load_project(dir.dir(), {});
    ASSERT_FALSE(loaded.has_value());
    EXPECT_EQ(loaded.error().kind(), base::ErrorKind::NotFound);
    EXPECT_EQ(loaded.error().message(),
              fmt::format("no project in `{}`: looked for `locald.toml` and `Procfile` there",
                          dir.dir()));
}

TEST(Project, MissingDirectoryIsNotFound) {
    TestProject dir;
    auto loaded = load_project(dir.path("nope"), {});
    ASSERT_FALSE(loaded.has_value());
    EXPECT_EQ(loaded.error().kind(), base::ErrorKind::NotFound);
    EXPECT_NE(loaded.error().message().find(dir.path("nope")), std::string::npos);
}

TEST(Project, ProjectPathMustBeADirectory) {
    TestProject dir;
    dir.write("file", "x");
    auto loaded = load_project(dir.path("file"), {});
    ASSERT_FALSE(loaded.has_value());
    EXPECT_EQ(loaded.error().kind(), base::ErrorKind::InvalidArgument);
    EXPECT_NE(loaded.error().message().find("not a directory"), std::string::npos);
}

TEST(Project, MissingEnvFileNamesWhereItWasListed) {
    TestProject dir;
    dir.write("locald.toml", "[service.web]\ncommand = \"x\"\nenv_file = [\"a.env\", \"b.env\"]\n");
    dir.write("a.env", "A=1\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_FALSE(loaded.has_value());
    EXPECT_EQ(loaded.error().kind(), base::ErrorKind::NotFound);
    EXPECT_EQ(
        loaded.error().message().rfind(dir.path("locald.toml") + ":3:22: env_file of `web`: ", 0),
        0u)
        << loaded.error().message();
    EXPECT_NE(loaded.error().message().find(dir.path("b.env")), std::string::npos);
}

TEST(Project, BadLineInEnvFileNamesThatFile) {
    TestProject dir;
    dir.write("locald.toml", "[service.web]\ncommand = \"x\"\nenv_file = \"w.env\"\n");
    dir.write("w.env", "OK=1\nnot valid\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_FALSE(loaded.has_value());
    EXPECT_EQ(loaded.error().message().rfind(dir.path("w.env") + ":2: ", 0), 0u)
        << loaded.error().message();
}

TEST(Project, BadDotEnvAndProcfileLinesNameTheirFiles) {
    TestProject dir;
    dir.write("Procfile", "web: ok\n");
    dir.write(".env.local", "\n\n'quoted'=1\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_FALSE(loaded.has_value());
    EXPECT_EQ(loaded.error().message().rfind(dir.path(".env.local") + ":3: ", 0), 0u)
        << loaded.error().message();

    TestProject other;
    other.write("locald.toml", "[service.a]\ncommand = \"a\"\n");
    other.write("Procfile", "a: x\nb x\n");
    loaded = load_project(other.dir(), {});
    ASSERT_FALSE(loaded.has_value());
    EXPECT_EQ(loaded.error().message().rfind(other.path("Procfile") + ":2: ", 0), 0u)
        << loaded.error().message();
}

TEST(Project, DependencyOnProcfileServiceIsKnown) {
    TestProject dir;
    dir.write("locald.toml", "[service.api]\ncommand = \"x\"\ndepends_on = [\"web\"]\n");
    dir.write("Procfile", "web: y\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_TRUE(loaded.has_value()) << loaded.error().to_string();
    auto order = start_order(loaded.value());
    EXPECT_EQ(order[0]->name, "web");
    EXPECT_EQ(order[1]->name, "api");
}

TEST(Project, AnEnvFileThatIsAFifoIsRefusedNotWaitedOn) {
    // Opening a FIFO for reading waits for a writer: the load must refuse it
    // instead (before the fix this test hung until ctest's timeout).
    testing::TestProject dir;
    dir.write("locald.toml", "[service.web]\ncommand = \"run\"\nenv_file = \"pipe.env\"\n");
    ASSERT_EQ(::mkfifo(dir.path("pipe.env").c_str(), 0600), 0);
    auto loaded = load_project(dir.dir(), {});
    ASSERT_FALSE(loaded.has_value());
    EXPECT_NE(loaded.error().message().find(dir.path("pipe.env")), std::string::npos)
        << loaded.error().message();
    EXPECT_NE(loaded.error().message().find("not a regular file"), std::string::npos)
        << loaded.error().message();
}

}  // namespace
}  // namespace locald::config

namespace locald::config {
namespace {

TEST(Project, DanglingDotEnvSymlinkIsAnErrorNotSkipped) {
    testing::TestProject dir;
    dir.write("Procfile", "web: run\n");
    ASSERT_EQ(::symlink("/nonexistent/target", dir.path(".env").c_str()), 0);
    auto loaded = load_project(dir.dir(), {});
    ASSERT_FALSE(loaded.has_value());
    EXPECT_EQ(loaded.error().kind(), base::ErrorKind::NotFound);
    EXPECT_NE(loaded.error().message().find(dir.path(".env")), std::string::npos);
}

TEST(Project, ProjectFileThatIsADirectoryIsAnError) {
    testing::TestProject dir;
    std::filesystem::create_directories(dir.path("locald.toml"));
    auto loaded = load_project(dir.dir(), {});
    ASSERT_FALSE(loaded.has_value());
    EXPECT_EQ(loaded.error().kind(), base::ErrorKind::InvalidArgument);
    EXPECT_NE(loaded.error().message().find("not a regular file"), std::string::npos);
}

}  // namespace
}  // namespace locald::config
