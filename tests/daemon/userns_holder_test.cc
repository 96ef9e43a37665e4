// Tests for daemon/userns_holder.h with stand-in holders: the report protocol,
// a holder that lies about having a namespace, and a real user namespace made
// by util-linux `unshare` (works as root and as an ordinary user, no subuid
// range needed) — the fd path names it, survives the holder's death, and a
// replacement keeps the same path.
#include "daemon/userns_holder.h"

#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "base/event_loop.h"

namespace locald::daemon {
namespace {

std::string link_of(const std::string& path) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(path, ec);
    return ec ? std::string() : target.string();
}

bool have_unshare() {
    return ::access("/usr/bin/unshare", X_OK) == 0 &&
           std::system("/usr/bin/unshare --user --map-root-user true 2>/dev/null") == 0;
}

TEST(UsernsHolder, AnErrorLineIsTheFailure) {
    auto loop = base::EventLoop::create();
    ASSERT_TRUE(loop);
    UsernsHolder holder(*loop, {"/bin/sh", "-c",
                                "echo 'warning: single mapping'; "
                                "echo 'error: newuidmap said no'; exit 1"});
    std::vector<std::string> warnings;
    auto path = holder.path(&warnings);
    ASSERT_FALSE(path);
    EXPECT_NE(path.error().to_string().find("newuidmap said no"), std::string::npos)
        << path.error().to_string();
    EXPECT_EQ(warnings, std::vector<std::string>{"single mapping"});
    EXPECT_EQ(holder.pid(), -1);
}

TEST(UsernsHolder, AHolderWithoutItsOwnNamespaceIsRefused) {
    auto loop = base::EventLoop::create();
    ASSERT_TRUE(loop);
    UsernsHolder holder(*loop, {"/bin/sh", "-c", "echo ready; exec cat"});
    auto path = holder.path();
    ASSERT_FALSE(path);
    EXPECT_NE(path.error().to_string().find("shares the daemon's user namespace"),
              std::string::npos)
        << path.error().to_string();
}

TEST(UsernsHolder, ExitWithoutReadyIsAFailureNamingTheStatus) {
    auto loop = base::EventLoop::create();
    ASSERT_TRUE(loop);
    UsernsHolder holder(*loop, {"/bin/sh", "-c", "exit 7"});
    auto path = holder.path();
    ASSERT_FALSE(path);
    EXPECT_NE(path.error().to_string().find("status 7"), std::string::npos)
        << path.error().to_string();
}

TEST(UsernsHolder, AHolderThatClosesItsOutputButLivesOnIsKilledNotAwaited) {
    // The start runs on the daemon's loop: a wait without a bound would
    // freeze every service.
    auto loop = base::EventLoop::create();
    ASSERT_TRUE(loop);
    UsernsHolder holder(*loop, {"/bin/sh", "-c", "exec >/dev/null 2>&1; exec sleep 600"},
                        std::chrono::milliseconds(300));
    auto path = holder.path();
    ASSERT_FALSE(path);
    EXPECT_NE(path.error().to_string().find("did not exit"), std::string::npos)
        << path.error().to_string();
    EXPECT_NE(path.error().to_string().find("SIGKILL"), std::string::npos)
        << path.error().to_string();
}

TEST(UsernsHolder, AHolderThatCannotBeExecutedIsNamed) {
    auto loop = base::EventLoop::create();
    ASSERT_TRUE(loop);
    UsernsHolder holder(*loop, {"/nonexistent/locald-launch", "--hold-userns"});
    auto path = holder.path();
    ASSERT_FALSE(path);
    EXPECT_NE(path.error().to_string().find("cannot execute `/nonexistent/locald-launch`"),
              std::string::npos)
        << path.error().to_string();
}

TEST(UsernsHolder, HoldsANamespaceAtAStablePathAndIsReplacedAfterItDies) {
    if (!have_unshare()) {
        GTEST_SKIP() << "LOUD SKIP: util-linux unshare cannot make a user namespace here";
    }
    auto loop = base::EventLoop::create();
    ASSERT_TRUE(loop);
    // `unshare` execs the shell inside the new namespace in the same process,
    // a direct child; it waits on stdin like the real holder.
    std::vector<std::string> argv = {"/usr/bin/unshare", "--user", "--map-root-user",
                                     "/bin/sh",          "-c",     "echo ready; exec cat"};
    std::string own = link_of("/proc/self/ns/user");
    std::string first_ns;
    std::string path_text;
    {
        auto owned = std::make_unique<UsernsHolder>(*loop, argv);
        UsernsHolder& holder = *owned;
        auto path = holder.path();
        ASSERT_TRUE(path) << path.error().to_string();
        path_text = *path;
        EXPECT_EQ(path_text.rfind(fmt::format("/proc/{}/fd/", ::getpid()), 0), 0u) << path_text;
        pid_t first = holder.pid();
        ASSERT_GT(first, 0);
        first_ns = link_of(fmt::format("/proc/{}/ns/user", first));
        EXPECT_EQ(link_of(path_text), first_ns);
        EXPECT_NE(first_ns, own);
        // Asked again: the same holder.
        EXPECT_EQ(*holder.path(), path_text);
        EXPECT_EQ(holder.pid(), first);

        // Killed: reaped on the loop; the path still names the old namespace
        // (the fd keeps it), and the next path() starts a new holder whose
        // namespace takes over the same path.
        ASSERT_EQ(::kill(first, SIGKILL), 0);
        for (int i = 0; i < 200 && holder.pid() != -1; ++i) {
            ASSERT_TRUE(loop->run_once(50));
        }
        EXPECT_EQ(holder.pid(), -1);
        EXPECT_EQ(link_of(path_text), first_ns);
        auto again = holder.path();
        ASSERT_TRUE(again) << again.error().to_string();
        EXPECT_EQ(*again, path_text);
        pid_t second = holder.pid();
        ASSERT_GT(second, 0);
        EXPECT_NE(second, first);
        std::string second_ns = link_of(fmt::format("/proc/{}/ns/user", second));
        EXPECT_NE(second_ns, first_ns);
        EXPECT_EQ(link_of(path_text), second_ns);

        // Destroyed: the holder is gone (killed and reaped, not a zombie).
        owned.reset();
        EXPECT_NE(::kill(second, 0), 0);
    }
}

}  // namespace
}  // namespace locald::daemon
