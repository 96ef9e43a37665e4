// The escape table of base/confined.h, run in both resolution modes: every
// path here is what a hostile image could contain, and nothing outside the
// root may be read, created or changed.
#include "base/confined.h"

#include <dirent.h>
#include <fcntl.h>
#include <seccomp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "base/child.h"
#include "base/sys.h"
#include "base/temp_dir.h"

namespace locald::base {
namespace {

void write(const std::string& path, const std::string& data) {
    ASSERT_TRUE(write_file(path, data)) << path;
}

void symlink_at(const std::string& target, const std::string& path) {
    ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0) << path;
}

// Everything under `dir` as relative path → content ("<dir>", "-> target").
void snapshot_into(const std::string& dir, const std::string& prefix,
                   std::map<std::string, std::string>& out) {
    DIR* handle = ::opendir(dir.c_str());
    ASSERT_NE(handle, nullptr) << dir;
    while (struct dirent* entry = ::readdir(handle)) {
        std::string name = entry->d_name;
        if (name == "." || name == "..") {
            continue;
        }
        std::string path = dir + "/" + name;
        std::string key = prefix + name;
        struct stat st;
        ASSERT_EQ(::lstat(path.c_str(), &st), 0);
        if (S_ISDIR(st.st_mode)) {
            out[key] = "<dir>";
            snapshot_into(path, key + "/", out);
        } else if (S_ISLNK(st.st_mode)) {
            out[key] = "-> " + read_link(path).value();
        } else {
            out[key] = read_file(path, 1 << 20).value();
        }
    }
    ::closedir(handle);
}

std::map<std::string, std::string> snapshot(const std::string& dir) {
    std::map<std::string, std::string> out;
    snapshot_into(dir, "", out);
    return out;
}

// The tree every confined test runs against: a root full of escape
// attempts, and a sibling "outside" that must never change.
class ConfinedTree : public ::testing::Test {
protected:
    virtual ResolveMode mode() const { return ResolveMode::Auto; }

    void SetUp() override {
        set_resolve_mode_for_testing(mode());
        m_temp = TempDir::create("confined-test").release_value();
        m_root = m_temp.join("root");
        m_outside = m_temp.join("outside");
        ASSERT_TRUE(mkdir_p(m_root + "/etc", 0755));
        ASSERT_TRUE(mkdir_p(m_root + "/dir/sub", 0755));
        ASSERT_TRUE(mkdir_p(m_root + "/outside", 0755));
        ASSERT_TRUE(mkdir_p(m_outside + "/etc", 0755));
        write(m_root + "/etc/passwd", "inner-passwd");
        write(m_root + "/outside/secret", "inner-decoy");
        write(m_root + "/file", "plain");
        write(m_outside + "/secret", "host-secret");
        write(m_outside + "/etc/passwd", "host-passwd");
        // Escape attempts.
        symlink_at("/etc", m_root + "/abs_etc");
        symlink_at("../..", m_root + "/up");
        symlink_at("../outside", m_root + "/up_outside");
        symlink_at("/", m_root + "/to_root");
        symlink_at("chain2", m_root + "/chain1");
        symlink_at("./chain3", m_root + "/chain2");
        symlink_at("dir/../etc/passwd", m_root + "/chain3");
        symlink_at("loop2", m_root + "/loop1");
        symlink_at("loop1", m_root + "/loop2");
        symlink_at("self", m_root + "/self");
        symlink_at("../../../../..", m_root + "/dir/link_up");
        symlink_at(m_outside + "/secret", m_root + "/abs_outside");
        symlink_at(m_outside + "/created", m_root + "/abs_dangling");
        symlink_at("../../outside/created2", m_root + "/rel_dangling");
        symlink_at("../../../outside/made", m_root + "/rel_dangling_dir");
        symlink_at("/proc/self/root", m_root + "/proc_link");
        int fd = ::open(m_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        m_root_fd.reset(fd);
        m_outside_before = snapshot(m_outside);
    }

    void TearDown() override {
        // The invariant of the whole suite: the host side never changes.
        EXPECT_EQ(snapshot(m_outside), m_outside_before);
        set_resolve_mode_for_testing(ResolveMode::Auto);
    }

    Result<std::string> read_in_root(const std::string& path, int extra_flags = 0) {
        UniqueFd fd = TRY(open_in_root(m_root_fd.get(), path, O_RDONLY | extra_flags));
        return read_all(fd.get(), 1 << 20);
    }

    // The errno of a failed open_in_root, or 0 if it succeeded.
    int open_errno(const std::string& path, int flags, mode_t mode = 0) {
        auto fd = open_in_root(m_root_fd.get(), path, flags, mode);
        return fd ? 0 : fd.error().errno_value();
    }

    ino_t inode_of(int fd) { return fstat_fd(fd).value().st_ino; }
    ino_t inode_of(const std::string& path) { return lstat_path(path).value().st_ino; }

    TempDir m_temp;
    std::string m_root;
    std::string m_outside;
    UniqueFd m_root_fd;
    std::map<std::string, std::string> m_outside_before;
};

class ConfinedTest : public ConfinedTree, public ::testing::WithParamInterface<ResolveMode> {
protected:
    ResolveMode mode() const override { return GetParam(); }
};

TEST_P(ConfinedTest, ReadsResolveInsideTheRoot) {
    struct Case {
        const char* path;
        const char* content;
    };
    const Case cases[] = {
        {"etc/passwd", "inner-passwd"},
        {"/etc/passwd", "inner-passwd"},
        {"../../../etc/passwd", "inner-passwd"},
        {"abs_etc/passwd", "inner-passwd"},
        {"up/etc/passwd", "inner-passwd"},
        {"up/up/up/etc/passwd", "inner-passwd"},
        {"up_outside/secret", "inner-decoy"},
        {"to_root/etc/passwd", "inner-passwd"},
        {"to_root/../../etc/passwd", "inner-passwd"},
        {"chain1", "inner-passwd"},
        {"dir/link_up/etc/passwd", "inner-passwd"},
        {"dir/link_up/../etc/passwd", "inner-passwd"},
        {"etc/../etc/passwd", "inner-passwd"},
        {"dir/sub/../../etc/passwd", "inner-passwd"},
        {"//etc//passwd", "inner-passwd"},
        {"./etc/./passwd", "inner-passwd"},
        {"file", "plain"},
    };
    for (const Case& test : cases) {
        auto content = read_in_root(test.path);
        ASSERT_TRUE(content) << test.path << ": " << content.error().to_string();
        EXPECT_EQ(*content, test.content) << test.path;
    }
}

TEST_P(ConfinedTest, FailuresCarryTheKernelErrno) {
    struct Case {
        const char* path;
        int flags;
        int err;
    };
    const Case cases[] = {
        {"loop1", O_RDONLY, ELOOP},
        {"self", O_RDONLY, ELOOP},
        {"self/x", O_RDONLY, ELOOP},
        {"abs_outside", O_RDONLY, ENOENT},
        {"proc_link/etc/passwd", O_RDONLY, ENOENT},
        {"file/x", O_RDONLY, ENOTDIR},
        {"file/", O_RDONLY, ENOTDIR},
        {"missing", O_RDONLY, ENOENT},
        {"missing/x", O_RDONLY, ENOENT},
        {"", O_RDONLY, ENOENT},
        {"chain1", O_RDONLY | O_NOFOLLOW, ELOOP},
        {"etc", O_WRONLY, EISDIR},
        {"etc/passwd", O_RDONLY | O_DIRECTORY, ENOTDIR},
    };
    for (const Case& test : cases) {
        EXPECT_EQ(open_errno(test.path, test.flags), test.err) << "`" << test.path << "`";
    }
    auto failed = open_in_root(m_root_fd.get(), "loop1", O_RDONLY);
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().kind(), ErrorKind::InvalidArgument);
    EXPECT_NE(failed.error().message().find("loop1"), std::string::npos);
}

TEST_P(ConfinedTest, TheRootItselfAndDirectories) {
    for (const char* path : {".", "/", "..", "../..", "to_root", "up", "dir/link_up", "etc/.."}) {
        auto fd = open_in_root(m_root_fd.get(), path, O_RDONLY | O_DIRECTORY);
        ASSERT_TRUE(fd) << path << ": " << fd.error().to_string();
        EXPECT_EQ(inode_of(fd->get()), inode_of(m_root)) << path;
    }
    auto etc = open_in_root(m_root_fd.get(), "abs_etc/", O_RDONLY | O_DIRECTORY);
    ASSERT_TRUE(etc);
    EXPECT_EQ(inode_of(etc->get()), inode_of(m_root + "/etc"));
}

TEST_P(ConfinedTest, NoFollowWithPathOpensTheSymlinkItself) {
    auto link = open_in_root(m_root_fd.get(), "dir/../chain1", O_PATH | O_NOFOLLOW);
    ASSERT_TRUE(link) << link.error().to_string();
    struct stat st = fstat_fd(link->get()).value();
    EXPECT_TRUE(S_ISLNK(st.st_mode));
    EXPECT_EQ(st.st_ino, inode_of(m_root + "/chain1"));
    // Intermediate symlinks are still followed (and confined) with O_NOFOLLOW.
    auto through = open_in_root(m_root_fd.get(), "abs_etc/passwd", O_RDONLY | O_NOFOLLOW);
    ASSERT_TRUE(through);
    EXPECT_EQ(read_all(through->get(), 100).value(), "inner-passwd");
}

TEST_P(ConfinedTest, CreationFollowsDanglingSymlinksInsideTheRoot) {
    // Absolute dangling target: would be the host's outside/created.
    EXPECT_EQ(open_errno("abs_dangling", O_WRONLY | O_CREAT, 0644), ENOENT);
    // Relative dangling target climbing out: lands in root/outside.
    auto created = open_in_root(m_root_fd.get(), "rel_dangling", O_WRONLY | O_CREAT, 0600);
    ASSERT_TRUE(created) << created.error().to_string();
    ASSERT_TRUE(write_all(created->get(), "via-link"));
    EXPECT_EQ(read_file(m_root + "/outside/created2", 100).value(), "via-link");
    // O_CREAT|O_EXCL never follows the final symlink.
    EXPECT_EQ(open_errno("rel_dangling", O_WRONLY | O_CREAT | O_EXCL, 0600), EEXIST);
    EXPECT_EQ(open_errno("abs_dangling", O_WRONLY | O_CREAT | O_EXCL, 0600), EEXIST);
    // Truncating through a climbing symlink hits the decoy, not the host file.
    auto truncated = open_in_root(m_root_fd.get(), "up_outside/secret", O_WRONLY | O_TRUNC);
    ASSERT_TRUE(truncated);
    EXPECT_EQ(read_file(m_root + "/outside/secret", 100).value(), "");
    // Plain creation with the requested mode (umask permitting).
    auto fresh = open_in_root(m_root_fd.get(), "/dir/sub/new", O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_TRUE(fresh);
    EXPECT_EQ(fstat_fd(fresh->get()).value().st_mode & 0777, 0600u);
}

TEST_P(ConfinedTest, OpenParentNeverResolvesTheLeaf) {
    struct Case {
        const char* path;
        const char* parent;  // relative to the root; "" = the root
        const char* leaf;
    };
    const Case cases[] = {
        {"chain1", "", "chain1"},
        {"abs_etc/newfile", "etc", "newfile"},
        {"up/../x", "", "x"},
        {"/etc/passwd", "etc", "passwd"},
        {"etc/", "", "etc"},
        {"dir/link_up/dir/sub//", "dir", "sub"},
        {"up_outside/escape", "outside", "escape"},
        {"loop1", "", "loop1"},
    };
    for (const Case& test : cases) {
        auto parent = open_parent_in_root(m_root_fd.get(), test.path);
        ASSERT_TRUE(parent) << test.path << ": " << parent.error().to_string();
        std::string expected =
            std::string(test.parent).empty() ? m_root : m_root + "/" + test.parent;
        EXPECT_EQ(inode_of(parent->dir.get()), inode_of(expected)) << test.path;
        EXPECT_EQ(parent->leaf, test.leaf) << test.path;
    }
    for (const char* path : {".", "..", "/", "//", "etc/..", "etc/.", ""}) {
        auto parent = open_parent_in_root(m_root_fd.get(), path);
        ASSERT_FALSE(parent) << path;
    }
    EXPECT_EQ(open_parent_in_root(m_root_fd.get(), ".").error().kind(), ErrorKind::InvalidArgument);
    EXPECT_EQ(open_parent_in_root(m_root_fd.get(), "file/x").error().errno_value(), ENOTDIR);
    EXPECT_EQ(open_parent_in_root(m_root_fd.get(), "loop1/x").error().errno_value(), ELOOP);
    // The returned O_PATH dirfd works for *at calls on the entry itself.
    auto parent = open_parent_in_root(m_root_fd.get(), "up_outside/made_by_at");
    ASSERT_TRUE(parent);
    ASSERT_EQ(::mkdirat(parent->dir.get(), parent->leaf.c_str(), 0755), 0);
    EXPECT_TRUE(path_exists(m_root + "/outside/made_by_at").value());
}

TEST_P(ConfinedTest, MkdirAllStaysInside) {
    auto made = mkdir_all_in_root(m_root_fd.get(), "new/a/b", 0755);
    ASSERT_TRUE(made) << made.error().to_string();
    EXPECT_EQ(inode_of(made->get()), inode_of(m_root + "/new/a/b"));
    ASSERT_TRUE(mkdir_all_in_root(m_root_fd.get(), "abs_etc/x/y", 0755));
    EXPECT_TRUE(path_exists(m_root + "/etc/x/y").value());
    ASSERT_TRUE(mkdir_all_in_root(m_root_fd.get(), "up_outside/newdir", 0755));
    EXPECT_TRUE(path_exists(m_root + "/outside/newdir").value());
    ASSERT_TRUE(mkdir_all_in_root(m_root_fd.get(), "../../q/../r/./s/", 0755));
    EXPECT_TRUE(path_exists(m_root + "/r/s").value());
    EXPECT_TRUE(path_exists(m_root + "/q").value());
    // Existing: fine, and the same directory comes back.
    auto again = mkdir_all_in_root(m_root_fd.get(), "/new/a/b", 0755);
    ASSERT_TRUE(again);
    EXPECT_EQ(inode_of(again->get()), inode_of(m_root + "/new/a/b"));
    // Through a dangling climbing symlink: the target's parent is inside
    // the root and missing, so this fails instead of creating on the host.
    EXPECT_FALSE(mkdir_all_in_root(m_root_fd.get(), "rel_dangling_dir/z", 0755));
    EXPECT_EQ(mkdir_all_in_root(m_root_fd.get(), "file/x", 0755).error().errno_value(), ENOTDIR);
    EXPECT_FALSE(mkdir_all_in_root(m_root_fd.get(), "file", 0755));
    EXPECT_EQ(mkdir_all_in_root(m_root_fd.get(), "loop1/x", 0755).error().errno_value(), ELOOP);
}

TEST_P(ConfinedTest, RejectsNulBytes) {
    std::string path("etc\0/../../x", 12);
    auto fd = open_in_root(m_root_fd.get(), path, O_RDONLY);
    ASSERT_FALSE(fd);
    EXPECT_EQ(fd.error().kind(), ErrorKind::InvalidArgument);
}

TEST_P(ConfinedTest, LongSymlinkChainsHitTheHopLimit) {
    // 39 hops resolve, 41 do not (the kernel's limit is 40).
    write(m_root + "/end", "end");
    for (int i = 0; i < 41; ++i) {
        std::string target = i == 0 ? "end" : "hop" + std::to_string(i - 1);
        symlink_at(target, m_root + "/hop" + std::to_string(i));
    }
    EXPECT_EQ(read_in_root("hop38").value(), "end");
    EXPECT_EQ(open_errno("hop40", O_RDONLY), ELOOP);
}

// Differential check: for every path of up to three components from a hostile
// alphabet, the walk must agree with the kernel — same file, or same errno.
TEST_F(ConfinedTree, WalkAgreesWithOpenat2OnEveryShortPath) {
    const std::vector<std::string> alphabet = {
        "etc",        "passwd", "..",        ".",           "up",   "abs_etc", "chain1",
        "to_root",    "dir",    "sub",       "link_up",     "file", "missing", "loop1",
        "up_outside", "secret", "proc_link", "abs_outside", ""};
    struct Outcome {
        int err = 0;
        dev_t dev = 0;
        ino_t ino = 0;
        bool operator==(const Outcome&) const = default;
    };
    auto outcome = [&](ResolveMode mode, const std::string& path, int flags) {
        set_resolve_mode_for_testing(mode);
        auto fd = open_in_root(m_root_fd.get(), path, flags);
        if (!fd) {
            return Outcome{fd.error().errno_value()};
        }
        struct stat st = fstat_fd(fd->get()).value();
        return Outcome{0, st.st_dev, st.st_ino};
    };
    std::vector<std::string> paths;
    for (const std::string& a : alphabet) {
        paths.push_back(a);
        paths.push_back("/" + a);
        for (const std::string& b : alphabet) {
            paths.push_back(a + "/" + b);
            for (const std::string& c : alphabet) {
                paths.push_back(a + "/" + b + "/" + c);
            }
        }
    }
    int compared = 0;
    for (const std::string& path : paths) {
        for (int flags : {O_RDONLY, O_PATH | O_NOFOLLOW, O_RDONLY | O_DIRECTORY}) {
            Outcome kernel = outcome(ResolveMode::Openat2, path, flags);
            Outcome walk = outcome(ResolveMode::Walk, path, flags);
            EXPECT_EQ(kernel, walk) << "`" << path << "` flags " << flags << ": kernel errno "
                                    << kernel.err << ", walk errno " << walk.err;
            ++compared;
        }
    }
    EXPECT_GT(compared, 20000);
}

INSTANTIATE_TEST_SUITE_P(BothModes, ConfinedTest,
                         ::testing::Values(ResolveMode::Openat2, ResolveMode::Walk),
                         [](const ::testing::TestParamInfo<ResolveMode>& info) {
                             return info.param == ResolveMode::Openat2 ? "Openat2" : "Walk";
                         });

TEST(ConfinedAutoTest, UsesOpenat2OnThisKernel) {
    set_resolve_mode_for_testing(ResolveMode::Auto);
    EXPECT_EQ(effective_resolve_mode(), ResolveMode::Openat2);
}

// crun's trick: block openat2 with seccomp (ENOSYS, as container runtimes'
// default profiles do) and check Auto falls back to the walk and still
// confines.
TEST(ConfinedAutoTest, FallsBackToTheWalkWhenOpenat2IsBlocked) {
    auto temp = TempDir::create("confined-seccomp").release_value();
    ASSERT_TRUE(mkdir_p(temp.join("root/etc"), 0755));
    ASSERT_TRUE(write_file(temp.join("root/etc/passwd"), "inner"));
    ASSERT_EQ(::symlink("/etc", temp.join("root/abs_etc").c_str()), 0);
    set_resolve_mode_for_testing(ResolveMode::Auto);
    std::string root = temp.join("root");
    auto child = Child::spawn([&]() -> int {
        scmp_filter_ctx filter = seccomp_init(SCMP_ACT_ALLOW);
        if (filter == nullptr ||
            seccomp_rule_add(filter, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2), 0) != 0 ||
            seccomp_load(filter) != 0) {
            return 10;
        }
        int root_fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        auto fd = open_in_root(root_fd, "abs_etc/passwd", O_RDONLY);
        if (!fd) {
            return 11;
        }
        auto content = read_all(fd->get(), 100);
        if (!content || *content != "inner") {
            return 12;
        }
        if (effective_resolve_mode() != ResolveMode::Walk) {
            return 13;
        }
        // Forcing openat2 now reports the kernel cannot do it.
        set_resolve_mode_for_testing(ResolveMode::Openat2);
        auto forced = open_in_root(root_fd, "abs_etc/passwd", O_RDONLY);
        if (forced || forced.error().kind() != ErrorKind::Unsupported) {
            return 14;
        }
        return 0;
    });
    ASSERT_TRUE(child);
    auto status = child->wait();
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, ExitStatus::exited(0)) << status->to_string();
}

}  // namespace
}  // namespace locald::base
