// Tests for ns/launch_main.h: which executable a supervisor runs for a spec,
// and the launch entry point's error paths (no container is started).
#include "ns/launch_main.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

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

}  // namespace
}  // namespace locald::ns
