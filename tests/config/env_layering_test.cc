// Env layering, lowest to highest: .env < .env.local < [env] < env_file… <
// env < injected, over the client's environment; each value keeps the file
// and line that set it.
#include <gtest/gtest.h>

#include <map>

#include "config/spec.h"
#include "test_project.h"

namespace locald::config {
namespace {

using testing::TestProject;

const EnvEntry* find(const std::vector<EnvEntry>& entries, const std::string& key) {
    for (const auto& entry : entries) {
        if (entry.key == key) {
            return &entry;
        }
    }
    return nullptr;
}

class EnvLayering : public ::testing::Test {
protected:
    void SetUp() override {
        m_dir.write(".env",
                    "A=dotenv\nB=dotenv\nC=dotenv\nD=dotenv\nE=dotenv\nF=dotenv\n"
                    "FROM_SHELL=$SHELL_VAR\n");
        m_dir.write(".env.local", "B=local\nC=local\nD=local\nE=local\nF=local\n");
        m_dir.write("locald.toml",
                    "[env]\n"                                           // 1
                    "C = \"project\"\n"                                 // 2
                    "D = \"project\"\n"                                 // 3
                    "E = \"project\"\n"                                 // 4
                    "F = \"project\"\n"                                 // 5
                    "[service.web]\n"                                   // 6
                    "command = \"run\"\n"                               // 7
                    "env_file = [\"one.env\", \"two.env\"]\n"           // 8
                    "env = { F = \"service\", NUM = 3, YES = true }\n"  // 9
                    "[service.plain]\n"                                 // 10
                    "command = \"run\"\n");                             // 11
        m_dir.write("one.env", "D=one\nE=one\nF=one\n");
        m_dir.write("two.env", "\nE=two\nF=two\n");
        auto loaded = load_project(m_dir.dir(), Environment{{"SHELL_VAR", "from-shell"}});
        ASSERT_TRUE(loaded.has_value()) << loaded.error().to_string();
        m_project = loaded.release_value();
    }

    TestProject m_dir;
    ProjectSpec m_project;
};

TEST_F(EnvLayering, EachLayerOverridesTheOneBelowWithProvenance) {
    const ServiceSpec& web = *m_project.find_service("web");
    struct Expected {
        const char* key;
        const char* value;
        EnvOrigin origin;
        std::string location;
    };
    std::string toml = m_dir.path("locald.toml");
    for (const Expected& expected : {
             Expected{"A", "dotenv", EnvOrigin::DotEnv, m_dir.path(".env") + ":1"},
             Expected{"B", "local", EnvOrigin::DotEnv, m_dir.path(".env.local") + ":1"},
             Expected{"C", "project", EnvOrigin::ProjectEnv, toml + ":2:1"},
             Expected{"D", "one", EnvOrigin::EnvFile, m_dir.path("one.env") + ":1"},
             Expected{"E", "two", EnvOrigin::EnvFile, m_dir.path("two.env") + ":2"},
             Expected{"F", "service", EnvOrigin::ServiceEnv, toml + ":9:9"},
             Expected{"NUM", "3", EnvOrigin::ServiceEnv, toml + ":9:24"},
             Expected{"YES", "true", EnvOrigin::ServiceEnv, toml + ":9:33"},
             Expected{"FROM_SHELL", "from-shell", EnvOrigin::DotEnv, m_dir.path(".env") + ":7"},
         }) {
        const EnvEntry* entry = find(web.env, expected.key);
        ASSERT_NE(entry, nullptr) << expected.key;
        EXPECT_EQ(entry->value, expected.value) << expected.key;
        EXPECT_EQ(entry->origin, expected.origin) << expected.key;
        EXPECT_EQ(entry->location.to_string(), expected.location) << expected.key;
    }
    EXPECT_EQ(web.env.size(), 9u);
    // Key order.
    for (size_t i = 1; i < web.env.size(); ++i) {
        EXPECT_LT(web.env[i - 1].key, web.env[i].key);
    }
}

TEST_F(EnvLayering, OtherServicesSeeOnlyTheProjectLayers) {
    const ServiceSpec& plain = *m_project.find_service("plain");
    EXPECT_EQ(find(plain.env, "D")->value, "project");
    EXPECT_EQ(find(plain.env, "F")->value, "project");
    EXPECT_EQ(find(plain.env, "NUM"), nullptr);
    EXPECT_EQ(plain.env.size(), 7u);
    EXPECT_EQ(m_project.env.size(), 7u);
    EXPECT_EQ(find(m_project.env, "C")->origin, EnvOrigin::ProjectEnv);
}

TEST_F(EnvLayering, FilesAreListedForWatching) {
    EXPECT_EQ(m_project.files,
              (std::vector<std::string>{m_dir.path("locald.toml"), m_dir.path(".env"),
                                        m_dir.path(".env.local"), m_dir.path("one.env"),
                                        m_dir.path("two.env")}));
}

TEST_F(EnvLayering, ServiceEnvLayersBaseThenServiceThenInjected) {
    const ServiceSpec& web = *m_project.find_service("web");
    Environment base{{"PATH", "/usr/bin"},
                     {"A", "from-base"},
                     {"F", "from-base"},
                     {"LOCALD_SERVICE", "spoofed"}};
    std::vector<EnvEntry> injected{{"LOCALD_SERVICE", "web", EnvOrigin::Injected, {}},
                                   {"PORT", "4000", EnvOrigin::Injected, {}}};
    auto env = service_env(m_project, web, base, injected);
    EXPECT_EQ(find(env, "PATH")->value, "/usr/bin");
    EXPECT_EQ(find(env, "PATH")->origin, EnvOrigin::Environment);
    EXPECT_EQ(find(env, "A")->value, "dotenv");
    EXPECT_EQ(find(env, "F")->value, "service");
    EXPECT_EQ(find(env, "LOCALD_SERVICE")->value, "web");
    EXPECT_EQ(find(env, "LOCALD_SERVICE")->origin, EnvOrigin::Injected);
    EXPECT_EQ(find(env, "PORT")->value, "4000");
    EXPECT_EQ(env.size(), 9u + 3u);
    for (size_t i = 1; i < env.size(); ++i) {
        EXPECT_LT(env[i - 1].key, env[i].key);
    }
}

TEST(InjectedEnv, PortsProjectServiceAndNotifySocket) {
    TestProject dir;
    dir.write("locald.toml",
              "[service.web]\ncommand = \"w\"\nport = 3000\n"
              "[service.my-api]\ncommand = \"a\"\n"
              "[service.worker]\ncommand = \"k\"\nport = false\n"
              "[service.own]\ncommand = \"o\"\nenv = { PORT = \"9\" }\n");
    dir.write(".env", "PORT=1234\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_TRUE(loaded.has_value()) << loaded.error().to_string();
    const ProjectSpec& project = loaded.value();
    std::string name = project.name;

    // Offline (no assigned ports): only the pinned port is known.
    auto web = injected_env(project, *project.find_service("web"), {}, "");
    std::map<std::string, std::string> got;
    for (const auto& entry : web) {
        EXPECT_EQ(entry.origin, EnvOrigin::Injected);
        got[entry.key] = entry.value;
    }
    EXPECT_EQ(got, (std::map<std::string, std::string>{{"LOCALD_PORT_WEB", "3000"},
                                                       {"LOCALD_PROJECT", name},
                                                       {"LOCALD_SERVICE", "web"},
                                                       {"PORT", "3000"}}));

    // With the daemon's assignments and a notify socket.
    std::map<std::string, std::uint16_t> ports{
        {"my-api", 41000}, {"own", 41001}, {"worker", 41002}};
    auto api = injected_env(project, *project.find_service("my-api"), ports, "/run/n.sock");
    got.clear();
    for (const auto& entry : api) {
        got[entry.key] = entry.value;
    }
    EXPECT_EQ(got, (std::map<std::string, std::string>{{"LOCALD_PORT_MY_API", "41000"},
                                                       {"LOCALD_PORT_OWN", "41001"},
                                                       {"LOCALD_PORT_WEB", "3000"},
                                                       {"LOCALD_PROJECT", name},
                                                       {"LOCALD_SERVICE", "my-api"},
                                                       {"NOTIFY_SOCKET", "/run/n.sock"},
                                                       {"PORT", "41000"}}));

    // A service with port = false gets no PORT (but sees the others').
    auto worker = injected_env(project, *project.find_service("worker"), ports, "");
    EXPECT_EQ(find(worker, "PORT"), nullptr);
    EXPECT_EQ(find(worker, "LOCALD_PORT_WORKER"), nullptr);
    EXPECT_NE(find(worker, "LOCALD_PORT_WEB"), nullptr);

    // A service that sets PORT itself keeps it; the project's .env PORT does not count.
    const ServiceSpec& own = *project.find_service("own");
    auto own_injected = injected_env(project, own, ports, "");
    EXPECT_EQ(find(own_injected, "PORT"), nullptr);
    EXPECT_EQ(find(service_env(project, own, {}, own_injected), "PORT")->value, "9");
    auto api_env = service_env(project, *project.find_service("my-api"), {}, api);
    EXPECT_EQ(find(api_env, "PORT")->value, "41000");
    EXPECT_EQ(find(api_env, "PORT")->origin, EnvOrigin::Injected);
}

TEST(InjectedEnv, UnassignedPortKeysAreTheOnesOnlyTheDaemonKnows) {
    TestProject dir;
    dir.write("locald.toml",
              "[service.web]\ncommand = \"w\"\nport = 3000\n"
              "[service.my-api]\ncommand = \"a\"\n"
              "[service.worker]\ncommand = \"k\"\nport = false\n"
              "[service.own]\ncommand = \"o\"\nenv = { PORT = \"9\" }\n");
    dir.write(".env", "PORT=1234\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_TRUE(loaded.has_value()) << loaded.error().to_string();
    const ProjectSpec& project = loaded.value();
    using Keys = std::vector<std::string>;
    // my-api's free port is unknown offline: its PORT (the .env one is
    // overridden at `up`) and every auto port's LOCALD_PORT_<NAME>.
    EXPECT_EQ(unassigned_port_keys(project, *project.find_service("my-api"), {}),
              (Keys{"PORT", "LOCALD_PORT_MY_API", "LOCALD_PORT_OWN"}));
    // A pinned port, no port, and a service that sets PORT itself: no PORT.
    EXPECT_EQ(unassigned_port_keys(project, *project.find_service("web"), {}),
              (Keys{"LOCALD_PORT_MY_API", "LOCALD_PORT_OWN"}));
    EXPECT_EQ(unassigned_port_keys(project, *project.find_service("worker"), {}),
              (Keys{"LOCALD_PORT_MY_API", "LOCALD_PORT_OWN"}));
    EXPECT_EQ(unassigned_port_keys(project, *project.find_service("own"), {}),
              (Keys{"LOCALD_PORT_MY_API", "LOCALD_PORT_OWN"}));
    // Assigned ports are known.
    std::map<std::string, std::uint16_t> ports{{"my-api", 41000}, {"own", 41001}};
    EXPECT_EQ(unassigned_port_keys(project, *project.find_service("my-api"), ports), Keys{});
}

TEST(StartOrder, DependenciesFirstTiesInDefinitionOrder) {
    TestProject dir;
    dir.write("locald.toml",
              "[service.web]\ncommand = \"w\"\ndepends_on = [\"api\", \"cache\"]\n"
              "[service.api]\ncommand = \"a\"\ndepends_on = [\"db\"]\n"
              "[service.db]\ncommand = \"d\"\n"
              "[service.cache]\ncommand = \"c\"\n"
              "[service.lone]\ncommand = \"l\"\n");
    auto loaded = load_project(dir.dir(), {});
    ASSERT_TRUE(loaded.has_value()) << loaded.error().to_string();
    std::vector<std::string> names;
    for (const ServiceSpec* service : start_order(loaded.value())) {
        names.push_back(service->name);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"db", "api", "cache", "web", "lone"}));
}

}  // namespace
}  // namespace locald::config
