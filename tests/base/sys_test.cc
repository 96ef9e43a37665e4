#include "base/sys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "base/atomic_file.h"
#include "base/temp_dir.h"

namespace locald::base {
namespace {

class SysTest : public ::testing::Test {
protected:
    void SetUp() override { m_temp = TempDir::create("sys-test").release_value(); }
    std::string path(std::string_view name) { return m_temp.join(name); }
    TempDir m_temp;
};

TEST_F(SysTest, OpenIsCloexecAndReportsThePath) {
    ASSERT_TRUE(write_file(path("f"), "data"));
    UniqueFd fd = open_file(path("f"), O_RDONLY).release_value();
    EXPECT_TRUE(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC);
    auto missing = open_file(path("nope"), O_RDONLY);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().kind(), ErrorKind::NotFound);
    EXPECT_EQ(missing.error().errno_value(), ENOENT);
    EXPECT_NE(missing.error().message().find(path("nope")), std::string::npos);
    UniqueFd dir = open_file(m_temp.path(), O_PATH | O_DIRECTORY).release_value();
    EXPECT_TRUE(open_at(dir.get(), "f", O_RDONLY));
    EXPECT_EQ(open_at(dir.get(), "g", O_RDONLY).error().errno_value(), ENOENT);
}

TEST_F(SysTest, ReadFileHonoursTheCap) {
    ASSERT_TRUE(write_file(path("f"), std::string(100000, 'x')));
    EXPECT_EQ(read_file(path("f"), 100000).value().size(), 100000u);
    auto capped = read_file(path("f"), 99999);
    ASSERT_FALSE(capped);
    EXPECT_EQ(capped.error().kind(), ErrorKind::InvalidArgument);
    EXPECT_NE(capped.error().message().find("exceeds the 99999-byte limit"), std::string::npos);
    EXPECT_EQ(read_file(path("missing"), 10).error().kind(), ErrorKind::NotFound);
    EXPECT_EQ(read_file(m_temp.path(), 10).error().errno_value(), EISDIR);
    ASSERT_TRUE(write_file(path("empty"), ""));
    EXPECT_EQ(read_file(path("empty"), 0).value(), "");
}

TEST_F(SysTest, PipesAndWriteAll) {
    Pipe pipe = make_pipe().release_value();
    EXPECT_TRUE(::fcntl(pipe.read.get(), F_GETFD) & FD_CLOEXEC);
    EXPECT_TRUE(::fcntl(pipe.write.get(), F_GETFD) & FD_CLOEXEC);
    ASSERT_TRUE(write_all(pipe.write.get(), "hello"));
    pipe.write.reset();
    EXPECT_EQ(read_all(pipe.read.get(), 100).value(), "hello");
    // Writing to a read end fails with EBADF, captured.
    Pipe other = make_pipe(O_NONBLOCK).release_value();
    EXPECT_TRUE(::fcntl(other.read.get(), F_GETFL) & O_NONBLOCK);
    auto failed = write_all(other.read.get(), "x");
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().errno_value(), EBADF);
    EXPECT_FALSE(read_all(-1, 10));
}

TEST_F(SysTest, FlagHelpers) {
    Pipe pipe = make_pipe().release_value();
    ASSERT_TRUE(set_cloexec(pipe.read.get(), false));
    EXPECT_FALSE(::fcntl(pipe.read.get(), F_GETFD) & FD_CLOEXEC);
    ASSERT_TRUE(set_cloexec(pipe.read.get(), true));
    EXPECT_TRUE(::fcntl(pipe.read.get(), F_GETFD) & FD_CLOEXEC);
    ASSERT_TRUE(set_nonblocking(pipe.read.get()));
    EXPECT_TRUE(::fcntl(pipe.read.get(), F_GETFL) & O_NONBLOCK);
    ASSERT_TRUE(set_nonblocking(pipe.read.get(), false));
    EXPECT_FALSE(::fcntl(pipe.read.get(), F_GETFL) & O_NONBLOCK);
    EXPECT_EQ(set_cloexec(-1).error().errno_value(), EBADF);
    EXPECT_EQ(set_nonblocking(-1).error().errno_value(), EBADF);
    UniqueFd copy = dup_fd(pipe.read.get()).release_value();
    EXPECT_NE(copy.get(), pipe.read.get());
    EXPECT_TRUE(::fcntl(copy.get(), F_GETFD) & FD_CLOEXEC);
    EXPECT_FALSE(dup_fd(-1));
}

TEST_F(SysTest, MkdirP) {
    ASSERT_TRUE(mkdir_p(path("a/b/c"), 0700));
    EXPECT_TRUE(S_ISDIR(stat_path(path("a/b/c")).value().st_mode));
    EXPECT_EQ(stat_path(path("a/b")).value().st_mode & 0777, 0700u);
    ASSERT_TRUE(mkdir_p(path("a/b/c"), 0700));  // idempotent
    ASSERT_TRUE(mkdir_p(path("a/b/c/"), 0700));
    ASSERT_TRUE(write_file(path("file"), "x"));
    auto blocked = mkdir_p(path("file"), 0700);
    ASSERT_FALSE(blocked);
    EXPECT_EQ(blocked.error().kind(), ErrorKind::AlreadyExists);
    EXPECT_EQ(mkdir_p(path("file/sub"), 0700).error().errno_value(), ENOTDIR);
    EXPECT_FALSE(mkdir_p("", 0700));
    // A symlink to a directory counts as the directory.
    ASSERT_EQ(::symlink(path("a").c_str(), path("link").c_str()), 0);
    EXPECT_TRUE(mkdir_p(path("link"), 0700));
}

TEST_F(SysTest, RemoveAllNeverFollowsSymlinks) {
    // A victim outside the tree, reachable only through symlinks.
    auto victim = TempDir::create("sys-victim").release_value();
    ASSERT_TRUE(write_file(victim.join("keep"), "precious"));
    ASSERT_TRUE(mkdir_p(path("tree/sub/deeper"), 0755));
    ASSERT_TRUE(write_file(path("tree/sub/deeper/f"), "x"));
    ASSERT_EQ(::symlink(victim.path().c_str(), path("tree/dirlink").c_str()), 0);
    ASSERT_EQ(::symlink(victim.join("keep").c_str(), path("tree/sub/filelink").c_str()), 0);
    ASSERT_EQ(::mkfifo(path("tree/fifo").c_str(), 0600), 0);
    // Images ship directories we cannot enter or write.
    ASSERT_TRUE(mkdir_p(path("tree/locked/inner"), 0755));
    ASSERT_TRUE(write_file(path("tree/locked/inner/f"), "x"));
    ASSERT_EQ(::chmod(path("tree/locked/inner").c_str(), 0), 0);
    ASSERT_EQ(::chmod(path("tree/locked").c_str(), 0500), 0);
    ASSERT_TRUE(remove_all(path("tree")));
    EXPECT_FALSE(path_exists(path("tree")).value());
    EXPECT_EQ(read_file(victim.join("keep"), 100).value(), "precious");
    // Missing is fine; a symlink argument itself is unlinked, not followed.
    EXPECT_TRUE(remove_all(path("tree")));
    ASSERT_EQ(::symlink(victim.path().c_str(), path("top").c_str()), 0);
    ASSERT_TRUE(remove_all(path("top")));
    EXPECT_FALSE(path_exists(path("top")).value());
    EXPECT_TRUE(path_exists(victim.join("keep")).value());
    EXPECT_FALSE(remove_all(""));
}

TEST_F(SysTest, StatHelpers) {
    ASSERT_TRUE(write_file(path("f"), "abc", 0640));
    ASSERT_EQ(::symlink("f", path("l").c_str()), 0);
    EXPECT_EQ(stat_path(path("l")).value().st_size, 3);
    EXPECT_TRUE(S_ISLNK(lstat_path(path("l")).value().st_mode));
    EXPECT_EQ(read_link(path("l")).value(), "f");
    EXPECT_EQ(read_link(path("f")).error().errno_value(), EINVAL);
    std::string long_target(3000, 'x');
    ASSERT_EQ(::symlink(long_target.c_str(), path("long").c_str()), 0);
    EXPECT_EQ(read_link(path("long")).value(), long_target);
    UniqueFd dir = open_file(m_temp.path(), O_PATH | O_DIRECTORY).release_value();
    EXPECT_TRUE(S_ISLNK(stat_at(dir.get(), "l", AT_SYMLINK_NOFOLLOW).value().st_mode));
    EXPECT_TRUE(S_ISREG(stat_at(dir.get(), "l", 0).value().st_mode));
    EXPECT_EQ(read_link_at(dir.get(), "l").value(), "f");
    EXPECT_EQ(stat_path(path("missing")).error().kind(), ErrorKind::NotFound);
    EXPECT_EQ(lstat_path(path("missing")).error().kind(), ErrorKind::NotFound);
    EXPECT_EQ(fstat_fd(-1).error().errno_value(), EBADF);
    EXPECT_TRUE(path_exists(path("l")).value());
    EXPECT_FALSE(path_exists(path("f/x")).value());
    EXPECT_FALSE(path_exists(path("missing")).value());
    EXPECT_EQ(stat_path(path("f")).value().st_mode & 0777, 0640u & ~0u);
}

TEST_F(SysTest, RenameUnlinkFsync) {
    ASSERT_TRUE(write_file(path("a"), "1"));
    ASSERT_TRUE(rename_path(path("a"), path("b")));
    EXPECT_EQ(read_file(path("b"), 10).value(), "1");
    EXPECT_EQ(rename_path(path("a"), path("c")).error().kind(), ErrorKind::NotFound);
    ASSERT_TRUE(write_file(path("c"), "2"));
    UniqueFd dir = open_file(m_temp.path(), O_PATH | O_DIRECTORY).release_value();
    EXPECT_EQ(rename_at(dir.get(), "b", dir.get(), "c", RENAME_NOREPLACE).error().kind(),
              ErrorKind::AlreadyExists);
    ASSERT_TRUE(rename_at(dir.get(), "b", dir.get(), "d"));
    ASSERT_TRUE(unlink_path(path("d")));
    EXPECT_EQ(unlink_path(path("d")).error().kind(), ErrorKind::NotFound);
    EXPECT_TRUE(fsync_dir(m_temp.path()));
    EXPECT_FALSE(fsync_dir(path("c")));  // not a directory
    EXPECT_FALSE(fsync_fd(-1));
}

TEST_F(SysTest, AtomicWriteReplacesAndHonoursMode) {
    ::mode_t old_umask = ::umask(077);
    ASSERT_TRUE(atomic_write_file(path("cfg"), "v1", 0644));
    ::umask(old_umask);
    // The mode is exact: umask does not apply.
    EXPECT_EQ(stat_path(path("cfg")).value().st_mode & 0777, 0644u);
    ASSERT_TRUE(atomic_write_file(path("cfg"), "v2", 0600));
    EXPECT_EQ(read_file(path("cfg"), 10).value(), "v2");
    EXPECT_EQ(stat_path(path("cfg")).value().st_mode & 0777, 0600u);
    // Only the target is left: no temporary files.
    ASSERT_TRUE(remove_all(path("cfg")));
    EXPECT_EQ(::rmdir(m_temp.path().c_str()), 0);
    ASSERT_EQ(::mkdir(m_temp.path().c_str(), 0700), 0);
}

TEST_F(SysTest, AtomicWriteFailuresLeaveNothingBehind) {
    // Missing directory.
    EXPECT_EQ(atomic_write_file(path("no/such/file"), "x").error().kind(), ErrorKind::NotFound);
    EXPECT_EQ(atomic_write_file(path("dir/"), "x").error().kind(), ErrorKind::InvalidArgument);
    // Rename onto a non-empty directory fails after the temp file was
    // written: the temp file must be gone and the directory untouched.
    ASSERT_TRUE(mkdir_p(path("target/child"), 0755));
    auto failed = atomic_write_file(path("target"), "x");
    ASSERT_FALSE(failed);
    EXPECT_NE(failed.error().message().find("renaming"), std::string::npos);
    ASSERT_TRUE(remove_all(path("target")));
    EXPECT_EQ(::rmdir(m_temp.path().c_str()), 0) << "a temporary file was left behind";
    ASSERT_EQ(::mkdir(m_temp.path().c_str(), 0700), 0);
}

TEST_F(SysTest, AtomicFileStreamsAndAbortsOnDrop) {
    {
        AtomicFile file = AtomicFile::create(path("blob"), 0444).release_value();
        ASSERT_TRUE(file.write("part1,"));
        ASSERT_TRUE(file.write("part2"));
        EXPECT_TRUE(path_exists(file.temp_path()).value());
        EXPECT_FALSE(path_exists(path("blob")).value());
        ASSERT_TRUE(file.commit());
        EXPECT_FALSE(file.commit());
        EXPECT_FALSE(file.write("late"));
    }
    EXPECT_EQ(read_file(path("blob"), 100).value(), "part1,part2");
    EXPECT_EQ(stat_path(path("blob")).value().st_mode & 0777, 0444u);
    std::string temp_path;
    {
        AtomicFile file = AtomicFile::create(path("dropped"), 0644).release_value();
        ASSERT_TRUE(file.write("never committed"));
        temp_path = file.temp_path();
        AtomicFile moved = std::move(file);
        EXPECT_TRUE(path_exists(temp_path).value());
    }
    EXPECT_FALSE(path_exists(temp_path).value());
    EXPECT_FALSE(path_exists(path("dropped")).value());
    UniqueFd dir = open_file(m_temp.path(), O_PATH | O_DIRECTORY).release_value();
    ASSERT_TRUE(atomic_write_file_at(dir.get(), "at", "via dirfd", 0600));
    EXPECT_EQ(read_file(path("at"), 100).value(), "via dirfd");
    EXPECT_FALSE(atomic_write_file_at(dir.get(), "a/b", "x"));
    EXPECT_FALSE(atomic_write_file_at(dir.get(), "..", "x"));
}

}  // namespace
}  // namespace locald::base
