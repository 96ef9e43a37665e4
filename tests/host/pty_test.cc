// spawn_in_pty with real PTYs and real processes.
#include "host/pty.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "host/process_tree.h"
#include "test_util.h"

namespace locald::host {
namespace {

using testing::helper_path;
using testing::read_until_eio;

WaitResult reap(PtyChild& child) {
    WaitResult result;
    bool reaped = testing::wait_until([&] {
        auto r = try_reap(child.pid, child.pidfd.get());
        if (r.has_value() && r.value().has_value()) {
            result = *r.value();
            return true;
        }
        return false;
    });
    EXPECT_TRUE(reaped) << "pid " << child.pid << " did not exit";
    return result;
}

TEST(PtySpawn, ChildGetsATerminalItsOwnSessionCwdAndExactlyTheEnv) {
    std::string dir = testing::make_temp_dir();
    ExecPlan plan;
    plan.argv = {helper_path(), "tty"};
    plan.env = {"FOO=bar baz", "PATH=/usr/bin:/bin"};
    plan.cwd = dir;
    plan.pty_size = {30, 100};
    auto child = spawn_in_pty(plan);
    ASSERT_TRUE(child.has_value()) << child.error().to_string();
    std::string out = read_until_eio(child->master.get());
    EXPECT_EQ(reap(*child).exit_code, 0);
    EXPECT_NE(out.find("isatty=111 size=30x100 term=xterm-256color leader=1 pgrp-leader=1 fg=1"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("cwd=" + dir + "\r\n"), std::string::npos) << out;
    EXPECT_NE(out.find("extra-fds=0\r\n"), std::string::npos) << out;
    // Exactly the plan's env plus TERM — nothing of ours leaks in.
    std::string env_lines;
    size_t pos = 0;
    while ((pos = out.find("env ", pos)) != std::string::npos) {
        size_t end = out.find("\r\n", pos);
        env_lines += out.substr(pos + 4, end - pos - 4) + ";";
        pos = end;
    }
    EXPECT_EQ(env_lines, "FOO=bar baz;PATH=/usr/bin:/bin;TERM=xterm-256color;");
}

TEST(PtySpawn, KeepsAGivenTerm) {
    ExecPlan plan;
    plan.argv = {helper_path(), "tty"};
    plan.env = {"TERM=dumb"};
    auto child = spawn_in_pty(plan);
    ASSERT_TRUE(child.has_value());
    std::string out = read_until_eio(child->master.get());
    reap(*child);
    EXPECT_NE(out.find("term=dumb "), std::string::npos) << out;
}

TEST(PtySpawn, CommandNotFoundIsAnErrorNotAHang) {
    ExecPlan plan;
    plan.argv = {"locald-no-such-command-xyz"};
    plan.env = {"PATH=/usr/bin:/bin"};
    auto child = spawn_in_pty(plan);
    ASSERT_FALSE(child.has_value());
    EXPECT_EQ(child.error().kind(), base::ErrorKind::NotFound);
    EXPECT_EQ(child.error().message(), "command not found: `locald-no-such-command-xyz`");
}

TEST(PtySpawn, UsesThePathOfThePlanNotOurs) {
    std::string dir = testing::make_temp_dir();
    std::string script = dir + "/only-here";
    {
        std::ofstream out(script);
        out << "#!/bin/sh\necho found-in-plan-path\n";
    }
    ::chmod(script.c_str(), 0755);
    ExecPlan plan;
    plan.argv = {"only-here"};
    plan.env = {"PATH=" + dir + ":/usr/bin:/bin"};
    auto child = spawn_in_pty(plan);
    ASSERT_TRUE(child.has_value()) << child.error().to_string();
    std::string out = read_until_eio(child->master.get());
    reap(*child);
    EXPECT_NE(out.find("found-in-plan-path"), std::string::npos);
}

TEST(PtySpawn, NotExecutableIsPermissionDenied) {
    std::string dir = testing::make_temp_dir();
    std::string file = dir + "/not-exec";
    std::ofstream(file) << "#!/bin/sh\n";
    ::chmod(file.c_str(), 0644);
    ExecPlan plan;
    plan.argv = {file};
    auto child = spawn_in_pty(plan);
    ASSERT_FALSE(child.has_value());
    EXPECT_EQ(child.error().kind(), base::ErrorKind::PermissionDenied);
    EXPECT_NE(child.error().to_string().find("ermission denied"), std::string::npos)
        << child.error().to_string();
}

TEST(PtySpawn, ExecFailureInTheChildCarriesTheRealErrno) {
    // Resolves fine (an executable file) but execve fails: the interpreter is
    // missing. Only the child can see that; the CLOEXEC pipe reports it.
    std::string dir = testing::make_temp_dir();
    std::string file = dir + "/bad-interp";
    std::ofstream(file) << "#!/nonexistent/interpreter\n";
    ::chmod(file.c_str(), 0755);
    ExecPlan plan;
    plan.argv = {file};
    auto child = spawn_in_pty(plan);
    ASSERT_FALSE(child.has_value());
    EXPECT_EQ(child.error().kind(), base::ErrorKind::NotFound);
    EXPECT_EQ(child.error().errno_value(), ENOENT);
    EXPECT_NE(child.error().message().find("exec `" + file + "`"), std::string::npos)
        << child.error().to_string();
}

TEST(PtySpawn, MissingCwdIsReported) {
    ExecPlan plan;
    plan.argv = {"/bin/true"};
    plan.cwd = "/nonexistent/dir/for/locald";
    auto child = spawn_in_pty(plan);
    ASSERT_FALSE(child.has_value());
    EXPECT_NE(child.error().message().find("working directory `/nonexistent/dir/for/locald`"),
              std::string::npos)
        << child.error().to_string();
}

TEST(PtySpawn, LastLinesBeforeExitAreReadableUntilEio) {
    ExecPlan plan;
    // Small enough to fit the PTY's buffers, so the child can exit unread.
    plan.argv = {helper_path(), "write-exit", "200"};
    auto child = spawn_in_pty(plan);
    ASSERT_TRUE(child.has_value());
    // Let it exit first: the data must still be in the PTY.
    WaitResult result = reap(*child);
    EXPECT_EQ(result.exit_code, 0);
    std::string out = read_until_eio(child->master.get());
    EXPECT_NE(out.find("line 199\r\n"), std::string::npos);
    EXPECT_TRUE(out.ends_with("last-no-newline")) << out.substr(out.size() - 40);
}

TEST(PtySpawn, InputAndResizeReachTheChild) {
    ExecPlan plan;
    plan.argv = {helper_path(), "echo"};
    auto child = spawn_in_pty(plan);
    ASSERT_TRUE(child.has_value());
    ASSERT_TRUE(set_window_size(child->master.get(), {50, 132}).has_value());
    struct winsize ws {};
    ASSERT_EQ(::ioctl(child->master.get(), TIOCGWINSZ, &ws), 0);
    EXPECT_EQ(ws.ws_row, 50);
    EXPECT_EQ(ws.ws_col, 132);
    auto written = write_input(child->master.get(), "hello\n\x04");
    ASSERT_TRUE(written.has_value());
    EXPECT_EQ(*written, 7u);
    std::string out = read_until_eio(child->master.get());
    reap(*child);
    EXPECT_NE(out.find("got: hello"), std::string::npos) << out;
}

TEST(PtySpawn, ExitCodeAndSignalAreReported) {
    ExecPlan plan;
    plan.argv = {helper_path(), "exit", "7"};
    auto child = spawn_in_pty(plan);
    ASSERT_TRUE(child.has_value());
    read_until_eio(child->master.get());
    WaitResult r = reap(*child);
    EXPECT_EQ(r.exit_code, 7);
    EXPECT_EQ(r.signal, 0);

    plan.argv = {helper_path(), "ignore-term"};
    auto other = spawn_in_pty(plan);
    ASSERT_TRUE(other.has_value());
    ::kill(other->pid, SIGKILL);
    WaitResult k = reap(*other);
    EXPECT_EQ(k.signal, SIGKILL);
    EXPECT_EQ(k.exit_code, 128 + SIGKILL);
}

TEST(PtySpawn, ChildIsBornInTheGivenCgroup2Cgroup) {
    auto tree = ProcessTree::create("pty-born-in", TrackMode::Auto);
    ASSERT_TRUE(tree.has_value()) << tree.error().to_string();
    if (!(*tree)->uses_cgroup_v2()) {
        GTEST_SKIP() << "no writable cgroup2 cgroup for this user: " << cgroup_support().why_not;
    }
    base::UniqueFd dir(::open((*tree)->cgroup_dir().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir) << std::strerror(errno);
    ExecPlan plan;
    plan.argv = {helper_path(), "ignore-term"};
    SpawnOptions options;
    options.cgroup_dir_fd = dir.get();
    // Not a usable fallback: only clone3(CLONE_INTO_CGROUP) can put it there.
    options.cgroup_procs_path = "/nonexistent/cgroup.procs";
    auto child = spawn_in_pty(plan, options);
    ASSERT_TRUE(child.has_value()) << child.error().to_string();
    std::ifstream in("/proc/" + std::to_string(child->pid) + "/cgroup");
    std::string line, v2;
    while (std::getline(in, line)) {
        if (line.starts_with("0::")) {
            v2 = line.substr(3);
        }
    }
    std::string name = (*tree)->cgroup_dir().substr((*tree)->cgroup_dir().rfind('/'));
    EXPECT_TRUE(v2.ends_with(name)) << v2 << " vs " << (*tree)->cgroup_dir();
    ::kill(child->pid, SIGKILL);
    EXPECT_EQ(reap(*child).signal, SIGKILL);
}

}  // namespace
}  // namespace locald::host
