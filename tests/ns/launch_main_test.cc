// Tests for ns/launch_main.h: which executable a supervisor runs for a spec,
// the launch entry point's error paths (no container is started), and the
// user namespace holder's parent check.
#include "ns/launch_main.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>

#include "base/exit_code.h"

namespace locald::ns {
namespace {

struct TempDir {
    std::string path;
    TempDir() {
        std::string pattern = "/tmp/ns-launch-test-XXXXXX";
        path = ::mkdtemp(pattern.data());
    }
    ~TempDir() {
        std::string cmd = "rm -rf '" + path + "'";
        (void)std::system(cmd.c_str());
    }
    void write(const std::string& name, const std::string& text, mode_t mode) const {
        std::string file = path + "/" + name;
        int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
        ::close(fd);
        ::chmod(file.c_str(), mode);
    }
};

TEST(NsLaunchCommand, PrefersTheSlimExecutableNextToTheBinary) {
    TempDir dir;
    dir.write("locald", "", 0755);
    dir.write("locald-launch", "", 0755);
    auto argv = launch_command("/s/spec.json", dir.path + "/locald");
    EXPECT_EQ(argv, (std::vector<std::string>{dir.path + "/locald-launch", "/s/spec.json"}));
}

TEST(NsLaunchCommand, FallsBackToTheInternalModeWithoutIt) {
    TempDir dir;
    dir.write("locald", "", 0755);
    auto argv = launch_command("/s/spec.json", dir.path + "/locald");
    EXPECT_EQ(argv, (std::vector<std::string>{dir.path + "/locald", "__launch", "/s/spec.json"}));
    // Present but not executable: not used either (as root, X_OK still needs
    // one execute bit).
    dir.write("locald-launch", "", 0644);
    argv = launch_command("/s/spec.json", dir.path + "/locald");
    EXPECT_EQ(argv.at(1), "__launch");
}

TEST(NsLaunchCommand, SlimExecutableRunningItselfIsNotSpecial) {
    TempDir dir;
    dir.write("locald-launch", "", 0755);
    // Called from the slim executable itself: never return it with `__launch`.
    auto argv = launch_command("/x.json", dir.path + "/locald-launch");
    EXPECT_EQ(argv, (std::vector<std::string>{dir.path + "/locald-launch", "__launch", "/x.json"}));
}

TEST(NsLaunchMain, UsageAndBadSpecsAreErrorsWithExitCodes) {
    TempDir dir;
    EXPECT_EQ(launch_main(std::vector<std::string>{}), 2);
    EXPECT_EQ(launch_main(std::vector<std::string>{"a", "b"}), 2);
    // Missing file: NotFound → the CLI's bad-input code.
    EXPECT_EQ(launch_main(std::vector<std::string>{dir.path + "/missing.json"}), 3);
    dir.write("bad.json", "{not json", 0644);
    EXPECT_EQ(launch_main(std::vector<std::string>{dir.path + "/bad.json"}), 3);
    dir.write("relative.json", R"({"rootfs": {"path": "relative"}, "args": ["x"]})", 0644);
    EXPECT_EQ(launch_main(std::vector<std::string>{dir.path + "/relative.json"}), 3);
}

TEST(NsLaunchMain, ExitCodesFollowTheCli) {
    EXPECT_EQ(base::exit_code_for(base::ErrorKind::InvalidArgument), 3);
    EXPECT_EQ(base::exit_code_for(base::ErrorKind::Unavailable), 4);
    EXPECT_EQ(base::exit_code_for(base::ErrorKind::Internal), 70);
    EXPECT_EQ(base::exit_code_for(base::ErrorKind::PermissionDenied), 1);
    EXPECT_EQ(base::exit_code_for(base::ErrorKind::Cancelled), 130);
}

// The holder's parent (the daemon) dies after forking it but before the
// holder arms PR_SET_PDEATHSIG: the signal was never armed, so only a check
// made after arming can notice. Made deterministic here: the holder starts
// only once its parent is reaped, adopted by a subreaper (so its parent pid
// is not 1). It must refuse to hold, naming the dead parent, and not wait
// for stdin's EOF (the test keeps the write end open, as a leaked copy
// would). Before the fix it held, for as long as stdin stayed open.
TEST(NsHoldUserns, AHolderWhoseParentDiedBeforeItArmedItsDeathSignalDoesNotHold) {
    int out[2], in[2], go[2];
    ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(in, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
    pid_t reaper = ::fork();
    ASSERT_GE(reaper, 0);
    if (reaper == 0) {
        ::prctl(PR_SET_CHILD_SUBREAPER, 1);
        pid_t parent = ::fork();
        if (parent == 0) {
            const pid_t self = ::getpid();  // what the daemon passes
            pid_t holder = ::fork();
            if (holder == 0) {
                for (int fd : {out[0], in[1], go[1]}) {
                    ::close(fd);
                }
                char byte;
                if (::read(go[0], &byte, 1) != 1) {  // the parent is reaped
                    ::_exit(91);
                }
                ::dup2(in[0], STDIN_FILENO);
                ::dup2(out[1], STDOUT_FILENO);
                ::_exit(launch_main(std::vector<std::string>{
                    kHoldUsernsFlag, kHoldUsernsParentFlag + std::to_string(self)}));
            }
            ::_exit(holder > 0 ? 0 : 92);
        }
        // Only the holder keeps the test's pipe ends: the test reads its
        // output to EOF.
        for (int fd : {out[0], out[1], in[0], in[1], go[0]}) {
            ::close(fd);
        }
        int status = 0;
        while (::waitpid(parent, &status, 0) < 0 && errno == EINTR) {
        }
        (void)!::write(go[1], "g", 1);
        // The adopted holder: its exit status becomes ours.
        pid_t holder;
        while ((holder = ::waitpid(-1, &status, 0)) < 0 && errno == EINTR) {
        }
        ::_exit(holder > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : 93);
    }
    ::close(out[1]);
    ::close(in[0]);
    ::close(go[0]);
    ::close(go[1]);
    std::string text;
    char buf[512];
    ssize_t n;
    while ((n = ::read(out[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
        text.append(buf, static_cast<size_t>(std::max<ssize_t>(n, 0)));
    }
    ::close(out[0]);
    // Had it held, it would be waiting on stdin now; end it either way.
    ::close(in[1]);
    int status = 0;
    while (::waitpid(reaper, &status, 0) < 0 && errno == EINTR) {
    }
    EXPECT_EQ(text.find("ready"), std::string::npos) << text;
    EXPECT_NE(text.find("error: "), std::string::npos) << text;
    EXPECT_NE(text.find("exited before the holder started"), std::string::npos) << text;
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 1);
}

}  // namespace
}  // namespace locald::ns
