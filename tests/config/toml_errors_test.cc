// Every class of bad locald.toml, each an InvalidArgument that starts with the
// exact `file:line:col` of the offending key or value and says what was expected.
#include <gtest/gtest.h>

#include "config/spec.h"
#include "test_project.h"

namespace locald::config {
namespace {

using testing::TestProject;

struct BadToml {
    const char* name;
    std::string toml;
    std::string where;    // "line:col" (or "" for file-level errors)
    std::string message;  // a part of the message after `file:line:col: `
};

class TomlErrors : public ::testing::TestWithParam<BadToml> {};

TEST_P(TomlErrors, NameFileLineColumnAndExpectation) {
    const BadToml& test = GetParam();
    TestProject dir;
    dir.write("locald.toml", test.toml);
    auto loaded = load_project(dir.dir(), {});
    ASSERT_FALSE(loaded.has_value()) << "loaded:\n" << test.toml;
    EXPECT_EQ(loaded.error().kind(), base::ErrorKind::InvalidArgument);
    const std::string& message = loaded.error().message();
    std::string prefix = dir.path("locald.toml") + ":" + test.where + ": ";
    EXPECT_EQ(message.rfind(prefix, 0), 0u) << message << "\nexpected prefix: " << prefix;
    EXPECT_NE(message.find(test.message), std::string::npos)
        << message << "\nexpected to contain: " << test.message;
}

// toml++ recurses once per dotted-key component with no limit: a key of
// 100,000 components overflowed the stack and killed the daemon loading it.
TEST(TomlDepth, ADottedKeyNestedTooDeepIsAnErrorNotACrash) {
    TestProject dir;
    std::string key = "a";
    for (int i = 0; i < 100000; ++i) {
        key += ".b";
    }
    dir.write("locald.toml", "[service.web]\ncommand = \"run\"\n" + key + " = 1\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_FALSE(loaded.has_value());
    EXPECT_EQ(loaded.error().kind(), base::ErrorKind::InvalidArgument);
    EXPECT_EQ(
        loaded.error().message().rfind(dir.path("locald.toml") + ":3: invalid TOML: more "
                                                                 "than 1024 `.` outside strings",
                                       0),
        0u)
        << loaded.error().message();
}

const char kWeb[] = "[service.web]\ncommand = \"run\"\n";

INSTANTIATE_TEST_SUITE_P(
    Strict, TomlErrors,
    ::testing::Values(
        // --- syntax (toml++'s own message, located)
        BadToml{"syntax", "[service.web\ncommand = 1\n", "1:13", "invalid TOML: "},
        BadToml{"redefined_table", "[service.web]\ncommand = \"a\"\n[service.web]\n", "3:1",
                "invalid TOML: "},
        // --- unknown keys, with the allowed list
        BadToml{"unknown_top_key", "[projekt]\nname = \"x\"\n", "1:2",
                "unknown key `projekt` at the top level (did you mean `project`?); allowed: "
                "project, env, service, services"},
        BadToml{"unknown_project_key", "[project]\nnmae = \"x\"\n", "2:1",
                "unknown key `nmae` in [project] (did you mean `name`?); allowed: name"},
        BadToml{"unknown_service_key", std::string(kWeb) + "comand = \"x\"\n", "3:1",
                "unknown key `comand` in [service.web] (did you mean `command`?); allowed: "
                "command, entrypoint, workdir, env, env_file, port, depends_on, health_check, "
                "restart, backoff, min_uptime, max_restarts, stop_signal, stop_timeout, replicas, "
                "image, user, volumes, network, resources, read_only, build, process"},
        BadToml{"unknown_key_no_suggestion", std::string(kWeb) + "zzzzzzzz = 1\n", "3:1",
                "unknown key `zzzzzzzz` in [service.web]; allowed: command"},
        BadToml{"unknown_health_key",
                std::string(kWeb) + "health_check = { tcp = true, intreval = \"1s\" }\n", "3:30",
                "unknown key `intreval` in `service.web.health_check` (did you mean `interval`?)"},
        BadToml{"unknown_backoff_key", std::string(kWeb) + "backoff = { min = \"1s\" }\n", "3:13",
                "unknown key `min` in `service.web.backoff`"},
        BadToml{"unknown_build_key", "[service.api]\nbuild = { buildr = \"x\" }\n", "2:11",
                "unknown key `buildr` in `service.api.build` (did you mean `builder`?)"},
        BadToml{"unknown_resource_key",
                "[service.db]\nimage = \"pg\"\nresources = { mem = \"1G\" }\n", "3:15",
                "unknown key `mem` in `service.db.resources`"},
        // --- wrong types
        BadToml{"project_not_table", "project = \"x\"\n", "1:11",
                "`[project]`: expected a table, found a string"},
        BadToml{"service_not_table", "service = 5\n", "1:11",
                "`[service]`: expected a table, found an integer"},
        BadToml{"one_service_not_table", "service.web = \"run\"\n", "1:15",
                "`service.web`: expected a table, found a string"},
        BadToml{"project_name_type", "[project]\nname = 5\n", "2:8",
                "`project.name`: expected a string, found an integer"},
        BadToml{"project_name_slash", "[project]\nname = \"a/b\"\n", "2:8",
                "`project.name`: expected a non-empty name without `/` or whitespace"},
        BadToml{"command_type", "[service.web]\ncommand = 5\n", "2:11",
                "`service.web.command`: expected a string (run with /bin/sh -c) or an array of "
                "strings (exec'd directly), found an integer"},
        BadToml{"command_array_item_type", "[service.web]\ncommand = [\"a\", 1]\n", "2:17",
                "`service.web.command[1]`: expected a string, found an integer"},
        BadToml{"command_empty_string", "[service.web]\ncommand = \"  \"\n", "2:11",
                "`service.web.command`: expected a non-empty command"},
        BadToml{"command_empty_array", "[service.web]\ncommand = []\n", "2:11",
                "`service.web.command`: expected a non-empty array"},
        BadToml{"env_value_type", "[env]\nA = [1]\n", "2:5",
                "`env.A`: expected a string (or an integer or boolean), found an array"},
        BadToml{"env_bad_key", "[env]\n\"1A\" = \"x\"\n", "2:1",
                "`env`: invalid variable name `1A`"},
        BadToml{"service_env_type", std::string(kWeb) + "env = \"A=1\"\n", "3:7",
                "`service.web.env`: expected a table, found a string"},
        BadToml{"env_file_type", std::string(kWeb) + "env_file = 1\n", "3:12",
                "`service.web.env_file`: expected a string or an array of strings, found an "
                "integer"},
        BadToml{"workdir_type", std::string(kWeb) + "workdir = false\n", "3:11",
                "`service.web.workdir`: expected a string, found a boolean"},
        BadToml{"port_string", std::string(kWeb) + "port = \"3000\"\n", "3:8",
                "`service.web.port`: expected a port number (1-65535), true (assign a free port) "
                "or false (no port), found a string"},
        BadToml{"port_range", std::string(kWeb) + "port = 70000\n", "3:8",
                "`service.web.port`: expected an integer from 1 to 65535, found 70000"},
        BadToml{"port_zero", std::string(kWeb) + "port = 0\n", "3:8",
                "expected an integer from 1 to 65535, found 0"},
        BadToml{"replicas_zero", std::string(kWeb) + "replicas = 0\n", "3:12",
                "`service.web.replicas`: expected an integer from 1 to 1000, found 0"},
        BadToml{"max_restarts_negative", std::string(kWeb) + "max_restarts = -1\n", "3:16",
                "`service.web.max_restarts`: expected an integer from 0 to 1000000, found -1"},
        BadToml{"read_only_type", "[service.db]\nimage = \"pg\"\nread_only = \"no\"\n", "3:13",
                "`service.db.read_only`: expected a boolean (true or false), found a string"},
        BadToml{"depends_on_type", std::string(kWeb) + "depends_on = \"db\"\n", "3:14",
                "`service.web.depends_on`: expected an array of service names or a table of "
                "NAME = \"condition\", found a string"},
        BadToml{"volumes_type", "[service.db]\nimage = \"pg\"\nvolumes = \"a:/b\"\n", "3:11",
                "`service.db.volumes`: expected an array of strings, found a string"},
        BadToml{"cpus_type", "[service.db]\nimage = \"pg\"\nresources = { cpus = \"2\" }\n", "3:22",
                "`service.db.resources.cpus`: expected a number of CPUs like 1.5"},
        // --- bad values
        BadToml{"bad_duration", std::string(kWeb) + "stop_timeout = \"10\"\n", "3:16",
                "`service.web.stop_timeout`: invalid duration `10`: missing unit"},
        BadToml{"duration_not_string", std::string(kWeb) + "min_uptime = 5\n", "3:14",
                "`service.web.min_uptime`: expected a duration string with a unit (`500ms`, "
                "`10s`, `2m`), found an integer"},
        BadToml{"bad_health_duration",
                std::string(kWeb) + "health_check = { tcp = true, timeout = \"1 s\" }\n", "3:40",
                "`service.web.health_check.timeout`: invalid duration `1 s`"},
        BadToml{"bad_signal", std::string(kWeb) + "stop_signal = \"SIGTREM\"\n", "3:15",
                "`service.web.stop_signal`: unknown signal `SIGTREM` (expected a signal name"},
        BadToml{"bad_restart", std::string(kWeb) + "restart = \"sometimes\"\n", "3:11",
                "`service.web.restart`: expected \"no\", \"on-failure\" or \"always\", found "
                "`sometimes`"},
        BadToml{"bad_condition",
                "[service.a]\ncommand = \"a\"\n[service.b]\ncommand = \"b\"\n"
                "depends_on = { a = \"ready\" }\n",
                "5:20",
                "`service.b.depends_on.a`: expected \"started\", \"healthy\", \"completed\" or "
                "\"completed_successfully\", found `ready`"},
        BadToml{"backoff_initial_above_max",
                std::string(kWeb) + "backoff = { initial = \"1m\", max = \"30s\" }\n", "3:11",
                "`service.web.backoff`: `initial` (1m) is larger than `max` (30s)"},
        BadToml{"bad_network", "[service.db]\nimage = \"pg\"\nnetwork = \"bridge\"\n", "3:11",
                "`service.db.network`: expected \"host\" or \"none\", found `bridge`"},
        BadToml{"bad_memory", "[service.db]\nimage = \"pg\"\nresources = { memory = \"1X\" }\n",
                "3:24", "`service.db.resources.memory`: invalid memory size `1X`: unknown unit"},
        BadToml{"zero_cpus", "[service.db]\nimage = \"pg\"\nresources = { cpus = 0 }\n", "3:22",
                "expected a number of CPUs above 0"},
        BadToml{"bad_volume_target", "[service.db]\nimage = \"pg\"\nvolumes = [\"data:rel\"]\n",
                "3:12",
                "`service.db.volumes[0]`: invalid volume `data:rel`: the target must be an "
                "absolute path"},
        BadToml{"bad_volume_option", "[service.db]\nimage = \"pg\"\nvolumes = [\"data:/d:rx\"]\n",
                "3:12", "unknown option `rx`"},
        BadToml{"bad_volume_source", "[service.db]\nimage = \"pg\"\nvolumes = [\"a/b:/d\"]\n",
                "3:12", "a volume name matches"},
        BadToml{"bad_build_mode", "[service.api]\nbuild = { mode = \"vm\" }\n", "2:18",
                "`service.api.build.mode`: expected \"container\" or \"host\", found `vm`"},
        BadToml{"container_workdir_relative", "[service.db]\nimage = \"pg\"\nworkdir = \"data\"\n",
                "3:11", "a container's workdir must be an absolute path inside the container"},
        BadToml{"bad_service_name", "[service.\"my.web\"]\ncommand = \"x\"\n", "1:10",
                "invalid service name `my.web` (expected [A-Za-z0-9_-]+)"},
        BadToml{"image_with_space", "[service.db]\nimage = \"post gres\"\n", "2:9",
                "an image reference has no whitespace"},
        BadToml{"http_path", std::string(kWeb) + "health_check = { http = \"healthz\" }\n", "3:25",
                "`service.web.health_check.http`: expected a URL path starting with `/`"},
        BadToml{"tcp_false", std::string(kWeb) + "health_check = { tcp = false }\n", "3:24",
                "`service.web.health_check.tcp`: expected true"},
        BadToml{"bad_log_regex", std::string(kWeb) + "health_check = { log = \"/a(b/\" }\n", "3:24",
                "`service.web.health_check.log`: invalid regular expression `a(b`"},
        BadToml{"no_probe", std::string(kWeb) + "health_check = { interval = \"1s\" }\n", "3:16",
                "`service.web.health_check`: expected one probe: http = \"/path\", tcp = true, "
                "exec = \"command\", log = \"text\" or notify = true"},
        // --- clashes
        BadToml{"image_and_build", "[service.x]\nimage = \"pg\"\nbuild = { builder = \"b\" }\n",
                "3:1",
                "`image` and `build` clash in [service.x]: a service has exactly one of "
                "`command` (host), `image` or `build`"},
        BadToml{"nothing_to_run", "[service.web]\nport = 3000\n", "1:1",
                "service `web` needs one of `command` (a host process), `image` (an OCI image) "
                "or `build` (a CNB build)"},
        BadToml{"entrypoint_without_image", std::string(kWeb) + "entrypoint = [\"x\"]\n", "3:1",
                "`entrypoint` needs `image` in [service.web]"},
        BadToml{"process_without_build", std::string(kWeb) + "process = \"web\"\n", "3:1",
                "`process` needs `build` in [service.web]"},
        BadToml{"command_and_process",
                "[service.api]\nbuild = { builder = \"b\" }\ncommand = \"x\"\nprocess = \"web\"\n",
                "4:1", "`command` and `process` clash in [service.api]"},
        BadToml{"volumes_on_host", std::string(kWeb) + "volumes = [\"a:/b\"]\n", "3:1",
                "`volumes` in [service.web] needs a container"},
        BadToml{"user_on_host_build",
                "[service.api]\nbuild = { mode = \"host\" }\nuser = \"root\"\n", "3:1",
                "`user` in [service.api] needs a container"},
        BadToml{"two_probes", std::string(kWeb) + "health_check = { http = \"/\", tcp = true }\n",
                "3:30",
                "`http` and `tcp` clash in `service.web.health_check`: a health check has "
                "exactly one probe"},
        BadToml{"http_probe_without_port",
                std::string(kWeb) + "port = false\nhealth_check = { http = \"/\" }\n", "4:16",
                "a `http` health check probes the service's port, but `port = false`"},
        BadToml{"notify_probe_without_network",
                "[service.db]\nimage = \"postgres:15\"\nnetwork = \"none\"\n"
                "health_check = { notify = true }\n",
                "4:16",
                "a `notify` health check needs network = \"host\" (the notify socket is not "
                "reachable from network \"none\")"},
        BadToml{"replicas_with_pinned_port", std::string(kWeb) + "port = 80\nreplicas = 2\n",
                "4:12", "`replicas` and a pinned `port` clash in [service.web]"},
        BadToml{"service_and_services",
                "[service.a]\ncommand = \"a\"\n[services.b]\ncommand = \"b\"\n", "3:2",
                "`[services]` and `[service]` both define services; use one spelling"},
        BadToml{"pinned_port_twice",
                "[service.a]\ncommand = \"a\"\nport = 3000\n[service.b]\ncommand = \"b\"\n"
                "port = 3000\n",
                "6:8", "port 3000 is pinned by both `a`"},
        // --- dependencies
        BadToml{"unknown_dependency", std::string(kWeb) + "depends_on = [\"db\"]\n", "3:15",
                "`web` depends on unknown service `db` (services: `web`)"},
        BadToml{"unknown_dependency_table",
                std::string(kWeb) + "depends_on = { dbb = \"started\" }\n", "3:16",
                "`web` depends on unknown service `dbb`"},
        BadToml{"duplicate_dependency",
                "[service.a]\ncommand = \"a\"\n[service.b]\ncommand = \"b\"\n"
                "depends_on = [\"a\", \"a\"]\n",
                "5:20", "`service.b.depends_on`: `a` is listed twice"},
        BadToml{"healthy_without_health_check",
                "[service.db]\ncommand = \"d\"\n[service.web]\ncommand = \"w\"\n"
                "depends_on = { db = \"healthy\" }\n",
                "5:16", "`web` waits for `db` to be healthy, but `db` has no health_check"},
        BadToml{"self_cycle", "[service.a]\ncommand = \"a\"\ndepends_on = [\"a\"]\n", "3:15",
                "dependency cycle: a -> a"},
        BadToml{"two_cycle",
                "[service.a]\ncommand = \"a\"\ndepends_on = [\"b\"]\n"
                "[service.b]\ncommand = \"b\"\ndepends_on = [\"a\"]\n",
                "6:15", "dependency cycle: a -> b -> a"},
        BadToml{"three_cycle_after_a_tail",
                "[service.t]\ncommand = \"t\"\ndepends_on = [\"a\"]\n"
                "[service.a]\ncommand = \"a\"\ndepends_on = { b = \"started\" }\n"
                "[service.b]\ncommand = \"b\"\ndepends_on = [\"c\"]\n"
                "[service.c]\ncommand = \"c\"\ndepends_on = [\"a\"]\n",
                "12:15", "dependency cycle: a -> b -> c -> a"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace locald::config

namespace locald::config {
namespace {

// With several mistakes, the first one in the file is reported, whatever the
// key order toml++ iterates in.
INSTANTIATE_TEST_SUITE_P(
    FirstInFile, TomlErrors,
    ::testing::Values(
        BadToml{"values_in_file_order",
                "[service.web]\ncommand = \"x\"\nstop_timeout = \"10\"\nbackoff = 1\n", "3:16",
                "invalid duration `10`"},
        BadToml{"services_in_file_order",
                "[service.zeta]\ncommand = 1\n[service.alpha]\ncommand = 2\n", "2:11",
                "`service.zeta.command`"},
        BadToml{"top_level_in_file_order", "[service.web]\ncommand = 1\n[env]\nA = []\n", "2:11",
                "`service.web.command`"},
        BadToml{"unknown_key_before_values", "[service.web]\ncommand = 1\nzz = 2\n", "3:1",
                "unknown key `zz`"},
        BadToml{"probe_clash_names_the_later",
                "[service.web]\ncommand = \"x\"\n"
                "health_check = { tcp = true, http = \"/\" }\n",
                "3:30", "`tcp` and `http` clash"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace locald::config
