#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "base/child.h"
#include "base/subprocess.h"
#include "base/sys.h"
#include "base/temp_dir.h"

namespace locald::base {
namespace {

using namespace std::chrono_literals;

TEST(ChildTest, WaitReportsExitCodeAndSignal) {
    Child exits = Child::spawn([] { return 7; }).release_value();
    EXPECT_TRUE(exits.valid());
    EXPECT_GT(exits.pid(), 0);
    ExitStatus status = exits.wait().value();
    EXPECT_TRUE(status.is_exited());
    EXPECT_EQ(status.code(), 7);
    EXPECT_EQ(status.shell_code(), 7);
    EXPECT_FALSE(status.success());
    EXPECT_EQ(status.to_string(), "exited with status 7");
    EXPECT_FALSE(exits.valid());
    EXPECT_EQ(exits.wait().error().kind(), ErrorKind::FailedPrecondition);

    Child sleeper = Child::spawn([] {
                        ::pause();
                        return 0;
                    }).release_value();
    EXPECT_FALSE(sleeper.try_wait().value().has_value());
    ASSERT_TRUE(sleeper.kill(SIGKILL));
    ExitStatus killed = sleeper.wait().value();
    EXPECT_TRUE(killed.is_signaled());
    EXPECT_EQ(killed.signal(), SIGKILL);
    EXPECT_EQ(killed.shell_code(), 137);
    EXPECT_EQ(killed.to_string(), "killed by signal 9 (SIGKILL)");
    EXPECT_EQ(sleeper.kill(SIGTERM).error().kind(), ErrorKind::FailedPrecondition);
}

TEST(ChildTest, TryWaitReapsOnceExited) {
    Pipe pipe = make_pipe().release_value();
    Child child = Child::spawn([&] {
                      char c;
                      return ::read(pipe.read.get(), &c, 1) == 1 ? 0 : 1;
                  }).release_value();
    EXPECT_FALSE(child.try_wait().value().has_value());
    ASSERT_TRUE(write_all(pipe.write.get(), "x"));
    // Block on the pidfd (readable at exit) instead of sleeping.
    struct pollfd wait_for = {child.pidfd(), POLLIN, 0};
    ASSERT_EQ(::poll(&wait_for, 1, 10000), 1);
    auto status = child.try_wait().value();
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(status->success());
    EXPECT_FALSE(child.valid());
}

TEST(ChildTest, DroppingKillsAndReaps) {
    pid_t pid;
    {
        Child child = Child::spawn([] {
                          ::pause();
                          return 0;
                      }).release_value();
        pid = child.pid();
        Child moved = std::move(child);
        EXPECT_FALSE(child.valid());
        EXPECT_EQ(moved.pid(), pid);
    }
    // Reaped: no such child any more (not even a zombie).
    EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
}

TEST(ChildTest, AdoptAndRelease) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::_exit(5);
    }
    Child adopted = Child::adopt(pid).release_value();
    EXPECT_EQ(adopted.wait().value(), ExitStatus::exited(5));
    EXPECT_EQ(Child::adopt(-5).error().kind(), ErrorKind::InvalidArgument);

    Child child = Child::spawn([] { return 0; }).release_value();
    pid_t released_pid = child.pid();
    UniqueFd pidfd = child.release();
    EXPECT_FALSE(child.valid());
    EXPECT_TRUE(pidfd.valid());
    // Still ours to reap by hand.
    int status = 0;
    EXPECT_EQ(::waitpid(released_pid, &status, 0), released_pid);
    EXPECT_EQ(ExitStatus::from_wait_status(status), ExitStatus::exited(0));
}

TEST(SubprocessTest, CapturesOutputAndStatus) {
    SubprocessOptions options;
    options.argv = {"sh", "-c", "printf out; printf err >&2; exit 4"};
    SubprocessResult result = run_subprocess(options).value();
    EXPECT_EQ(result.status, ExitStatus::exited(4));
    EXPECT_EQ(result.stdout_data, "out");
    EXPECT_EQ(result.stderr_data, "err");
    EXPECT_FALSE(result.stdout_truncated);
}

TEST(SubprocessTest, StdinEnvAndCwd) {
    auto temp = TempDir::create("subprocess").release_value();
    SubprocessOptions options;
    options.argv = {"/bin/sh", "-c", "read line; echo \"$line:$GREETING:$(pwd):${HOME:-unset}\""};
    options.env = std::vector<std::string>{"GREETING=hi", "PATH=/usr/bin:/bin"};
    options.cwd = temp.path();
    options.stdin_data = "from-stdin\n";
    SubprocessResult result = run_subprocess(options).value();
    EXPECT_TRUE(result.status.success()) << result.stderr_data;
    EXPECT_EQ(result.stdout_data, "from-stdin:hi:" + temp.path() + ":unset\n");
    // Without stdin_data the child reads /dev/null.
    SubprocessOptions no_stdin;
    no_stdin.argv = {"cat"};
    EXPECT_EQ(run_subprocess(no_stdin).value().stdout_data, "");
}

TEST(SubprocessTest, LargeStdinAndAChildThatIgnoresIt) {
    SubprocessOptions options;
    options.argv = {"wc", "-c"};
    options.stdin_data = std::string(1 << 20, 'x');  // more than a pipe buffer
    EXPECT_EQ(run_subprocess(options).value().stdout_data, "1048576\n");
    options.argv = {"true"};  // closes stdin unread: EPIPE, not SIGPIPE
    EXPECT_TRUE(run_subprocess(options).value().status.success());
}

TEST(SubprocessTest, CapsKillTheChild) {
    SubprocessOptions options;
    options.argv = {"sh", "-c", "yes"};
    options.max_stdout = 1000;
    SubprocessResult result = run_subprocess(options).value();
    EXPECT_TRUE(result.stdout_truncated);
    EXPECT_EQ(result.stdout_data.size(), 1000u);
    EXPECT_EQ(result.status, ExitStatus::killed(SIGKILL));
}

TEST(SubprocessTest, Timeout) {
    SubprocessOptions options;
    options.argv = {"sleep", "30"};
    options.timeout = 50ms;
    auto result = run_subprocess(options);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind(), ErrorKind::DeadlineExceeded);
}

TEST(SubprocessTest, ExecFailuresAreErrors) {
    SubprocessOptions options;
    options.argv = {"/nonexistent/program"};
    auto missing = run_subprocess(options);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().kind(), ErrorKind::NotFound);
    EXPECT_NE(missing.error().message().find("/nonexistent/program"), std::string::npos);
    options.argv = {"locald-no-such-helper-xyz"};
    EXPECT_EQ(run_subprocess(options).error().kind(), ErrorKind::NotFound);
    // The child's PATH decides, not ours.
    options.argv = {"sh", "-c", "true"};
    options.env = std::vector<std::string>{"PATH=/nonexistent"};
    EXPECT_EQ(run_subprocess(options).error().kind(), ErrorKind::NotFound);
    options.env = std::vector<std::string>{"PATH=/nonexistent:/bin"};
    EXPECT_TRUE(run_subprocess(options).value().status.success());
    options.env.reset();
    auto temp = TempDir::create("noexec").release_value();
    ASSERT_TRUE(write_file(temp.join("script"), "#!/bin/sh\n", 0644));
    options.argv = {temp.join("script")};  // not executable
    EXPECT_EQ(run_subprocess(options).error().kind(), ErrorKind::PermissionDenied);
    options.argv = {"true"};
    options.cwd = "/nonexistent/dir";
    EXPECT_EQ(run_subprocess(options).error().kind(), ErrorKind::NotFound);
    EXPECT_EQ(run_subprocess({}).error().kind(), ErrorKind::InvalidArgument);
}

// While set, every process this test binary forks first forks a "keeper"
// that holds all its fds and waits: what a fork made (without exec) by
// another thread at that moment would do. The keeper's pid goes to
// g_keeper_pipe.
std::atomic<bool> g_hold_fds{false};
int g_keeper_pipe = -1;

void fork_a_keeper_in_the_child() {
    if (!g_hold_fds.load()) {
        return;
    }
    g_hold_fds.store(false);  // the keeper's own fork must not recurse
    pid_t keeper = ::fork();
    if (keeper == 0) {
        ::pause();
        ::_exit(0);
    }
    (void)!::write(g_keeper_pipe, &keeper, sizeof keeper);
}

// run_subprocess's wait for the exec must not depend on EOF of its
// close-on-exec error pipe alone: a keeper holds the write end (and the
// output pipes) as long as it lives. The child's exit, and the timeout,
// still end the wait.
TEST(SubprocessTest, AForkHoldingItsPipesDelaysNothing) {
    static bool registered = false;
    if (!registered) {
        ASSERT_EQ(::pthread_atfork(nullptr, nullptr, fork_a_keeper_in_the_child), 0);
        registered = true;
    }
    Pipe keepers = make_pipe().release_value();
    g_keeper_pipe = keepers.write.get();
    auto run = [](std::vector<std::string> argv, std::optional<std::chrono::milliseconds> timeout) {
        SubprocessOptions options;
        options.argv = std::move(argv);
        options.timeout = timeout;
        g_hold_fds.store(true);
        auto result = std::async(std::launch::async, [options] { return run_subprocess(options); });
        bool returned = result.wait_for(60s) == std::future_status::ready;
        g_hold_fds.store(false);
        return std::make_pair(returned, std::move(result));
    };
    std::vector<pid_t> keeper_pids;
    auto end_keepers = [&] {
        pid_t keeper;
        struct pollfd pfd = {keepers.read.get(), POLLIN, 0};
        while (::poll(&pfd, 1, 0) == 1 &&
               ::read(keepers.read.get(), &keeper, sizeof keeper) == sizeof keeper) {
            keeper_pids.push_back(keeper);
            ::kill(keeper, SIGKILL);  // unblocks a hung call, too
        }
    };
    // A program that exits at once, no timeout.
    auto [quick_returned, quick] = run({"true"}, std::nullopt);
    end_keepers();
    auto quick_result = quick.get();
    EXPECT_TRUE(quick_returned) << "waited for the keeper, not for the child";
    ASSERT_TRUE(quick_result) << quick_result.error().to_string();
    EXPECT_TRUE(quick_result->status.success());
    // A program that outlives its timeout.
    auto [slow_returned, slow] = run({"sleep", "600"}, 300ms);
    end_keepers();
    auto slow_result = slow.get();
    EXPECT_TRUE(slow_returned) << "the timeout did not apply while the keeper held the pipe";
    ASSERT_FALSE(slow_result);
    EXPECT_EQ(slow_result.error().kind(), ErrorKind::DeadlineExceeded);
    EXPECT_EQ(keeper_pids.size(), 2u);
    // The keepers are our grandchildren, reparented elsewhere once their
    // parents exit; nothing of them stays here.
}

TEST(SubprocessTest, ChildStartsWithCleanSignalsAndNoStrayFds) {
    // Block SIGTERM here as the event loop would; the child must not inherit it.
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigset_t old;
    ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &term, &old), 0);
    Pipe leak = make_pipe().release_value();
    ASSERT_TRUE(set_cloexec(leak.read.get(), false));  // a careless library fd
    SubprocessOptions options;
    options.argv = {
        "sh", "-c",
        "grep -E '^SigBlk' /proc/self/status; ls /proc/self/fd | sort -n | tr '\\n' ' '"};
    SubprocessResult result = run_subprocess(options).value();
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    EXPECT_NE(result.stdout_data.find("SigBlk:\t0000000000000000"), std::string::npos)
        << result.stdout_data;
    // 0, 1, 2 and the fd ls opens for the listing itself (3).
    EXPECT_NE(result.stdout_data.find("\n0 1 2 3 "), std::string::npos) << result.stdout_data;
    EXPECT_EQ(result.stdout_data.find(" 4 "), std::string::npos) << result.stdout_data;
}

}  // namespace
}  // namespace locald::base
