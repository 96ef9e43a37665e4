#include "daemon/state_store.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "base/sys.h"
#include "base/temp_dir.h"

namespace locald::daemon {
namespace {

TEST(StateStore, MissingFileIsEmptyState) {
    auto dir = base::TempDir::create("locald-state-test");
    ASSERT_TRUE(dir);
    StateStore store(dir->path() + "/state.json");
    auto state = store.load();
    ASSERT_TRUE(state);
    EXPECT_TRUE(state->projects.empty());
}

TEST(StateStore, RoundTripsAndIsPrivate) {
    auto dir = base::TempDir::create("locald-state-test");
    ASSERT_TRUE(dir);
    StateStore store(dir->path() + "/state.json");
    DaemonState state;
    state.daemon_pid = 42;
    state.cgroup_parent = "/sys/fs/cgroup/x";
    ProjectRecord project;
    project.dir = "/srv/shop";
    project.desired_up = true;
    project.env["TOKEN"] = "secret";
    ServiceRecord web;
    web.desired_up = true;
    web.port = 41234;
    web.run = RunRecord{1234, 987654321, "@locald/1/2"};
    project.services["web"] = web;
    project.services["worker"] = ServiceRecord{};
    state.projects["shop"] = project;
    ASSERT_TRUE(store.save(state));

    struct stat st {};
    ASSERT_EQ(::stat(store.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    auto loaded = store.load();
    ASSERT_TRUE(loaded) << loaded.error().to_string();
    EXPECT_EQ(loaded->daemon_pid, 42);
    EXPECT_EQ(loaded->cgroup_parent, "/sys/fs/cgroup/x");
    const auto& p = loaded->projects.at("shop");
    EXPECT_EQ(p.dir, "/srv/shop");
    EXPECT_TRUE(p.desired_up);
    EXPECT_EQ(p.env.at("TOKEN"), "secret");
    EXPECT_EQ(p.services.at("web").port, 41234);
    ASSERT_TRUE(p.services.at("web").run);
    EXPECT_EQ(p.services.at("web").run->pid, 1234);
    EXPECT_EQ(p.services.at("web").run->start_time, 987654321u);
    EXPECT_EQ(p.services.at("web").run->notify_socket, "@locald/1/2");
    EXPECT_FALSE(p.services.at("worker").desired_up);
    EXPECT_FALSE(p.services.at("worker").port);
}

TEST(StateStore, CorruptFileIsAnError) {
    auto dir = base::TempDir::create("locald-state-test");
    ASSERT_TRUE(dir);
    std::string path = dir->path() + "/state.json";
    ASSERT_TRUE(base::write_file(path, "{\"projects\": {\"x\": 3}}", 0600));
    StateStore store(path);
    auto loaded = store.load();
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().kind(), base::ErrorKind::DataLoss);
    ASSERT_TRUE(base::write_file(path, "{not json", 0600));
    EXPECT_FALSE(store.load());
}

}  // namespace
}  // namespace locald::daemon
