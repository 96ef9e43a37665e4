// Tests for base/userns.h: subid parsing and mapping rules (pure), and a
// Rootless test that really creates a mapped user namespace.
#include "base/userns.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace locald::base {
namespace {

TEST(UsernsParse, MatchesByNameAndByUidInFileOrder) {
    std::string text =
        "# comment\n"
        "alice:100000:65536\n"
        "bob:200000:65536\n"
        "\n"
        "1000:300000:10\n"
        "alice:400000:5\n";
    auto ranges = parse_subid_ranges(text, "alice", 1000);
    ASSERT_TRUE(ranges) << ranges.error().to_string();
    ASSERT_EQ(ranges->size(), 3u);
    EXPECT_EQ((*ranges)[0], (SubIdRange{100000, 65536}));
    EXPECT_EQ((*ranges)[1], (SubIdRange{300000, 10}));
    EXPECT_EQ((*ranges)[2], (SubIdRange{400000, 5}));
}

TEST(UsernsParse, NoEntryMeansNoRanges) {
    auto ranges = parse_subid_ranges("bob:200000:65536\n", "alice", 1000);
    ASSERT_TRUE(ranges);
    EXPECT_TRUE(ranges->empty());
}

TEST(UsernsParse, NameIsNotAPrefixMatch) {
    auto ranges = parse_subid_ranges("alice2:1:2\n10000:5:6\n", "alice", 1000);
    ASSERT_TRUE(ranges);
    EXPECT_TRUE(ranges->empty());
}

TEST(UsernsParse, MalformedLineForThisUserIsAnError) {
    for (const char* bad : {"alice:abc:10\n", "alice:10\n", "alice:10:-1\n", "alice:10:5x\n",
                            "alice:4294967295:2\n"}) {
        auto ranges = parse_subid_ranges(bad, "alice", 1000, "/etc/subuid");
        ASSERT_FALSE(ranges) << bad;
        EXPECT_EQ(ranges.error().kind(), ErrorKind::InvalidArgument);
        EXPECT_NE(ranges.error().message().find("/etc/subuid:1"), std::string::npos)
            << ranges.error().message();
    }
    // Another user's garbage is not our problem (shadow ignores it too).
    EXPECT_TRUE(parse_subid_ranges("bob:xyz\nalice:1:2\n", "alice", 1000));
}

TEST(UsernsParse, ZeroCountRangesAreSkipped) {
    auto ranges = parse_subid_ranges("alice:100:0\nalice:200:3\n", "alice", 1000);
    ASSERT_TRUE(ranges);
    ASSERT_EQ(ranges->size(), 1u);
    EXPECT_EQ((*ranges)[0].start, 200u);
}

TEST(UsernsParse, MissingFileIsNoRanges) {
    auto ranges = read_subid_ranges("/nonexistent/subuid", "alice", 1000);
    ASSERT_TRUE(ranges);
    EXPECT_TRUE(ranges->empty());
}

TEST(UsernsMapping, UserIsRootThenRangesFollow) {
    CurrentUser user{1000, 1001, "alice"};
    auto mapping = make_container_mapping(user, {{100000, 65536}, {300000, 10}}, {{200000, 65536}});
    EXPECT_EQ(mapping.uid_map,
              (std::vector<IdMap>{{0, 1000, 1}, {1, 100000, 65536}, {65537, 300000, 10}}));
    EXPECT_EQ(mapping.gid_map, (std::vector<IdMap>{{0, 1001, 1}, {1, 200000, 65536}}));
    EXPECT_FALSE(mapping.deny_setgroups);
    EXPECT_TRUE(mapping.warning.empty());
    EXPECT_EQ(mapping.uid_count(), 65547u);
    EXPECT_EQ(format_id_map(mapping.gid_map), "0 1001 1\n1 200000 65536\n");
    uint32_t host = 0;
    ASSERT_TRUE(map_to_host(mapping.uid_map, 65540, &host));
    EXPECT_EQ(host, 300003u);
    EXPECT_FALSE(map_to_host(mapping.uid_map, 65547, &host));
}

TEST(UsernsMapping, NoRangeIsASingleMappingWithSetgroupsDenied) {
    CurrentUser user{1000, 1000, "alice"};
    auto mapping = make_container_mapping(user, {}, {{200000, 10}});
    EXPECT_EQ(mapping.uid_map, (std::vector<IdMap>{{0, 1000, 1}}));
    EXPECT_EQ(mapping.gid_map, (std::vector<IdMap>{{0, 1000, 1}}));
    EXPECT_TRUE(mapping.deny_setgroups);
    EXPECT_TRUE(mapping.single());
    EXPECT_NE(mapping.warning.find("/etc/subuid"), std::string::npos) << mapping.warning;
}

TEST(UsernsMapping, RangeOverlappingTheUserOrHostRootIsDropped) {
    CurrentUser user{100005, 100005, "alice"};
    auto mapping =
        make_container_mapping(user, {{100000, 10}, {0, 5}, {500000, 10}}, {{500000, 10}});
    EXPECT_EQ(mapping.uid_map, (std::vector<IdMap>{{0, 100005, 1}, {1, 500000, 10}}));
}

TEST(UsernsMapping, RootNeverMapsHostRoot) {
    CurrentUser root{0, 0, "root"};
    auto with_range = make_container_mapping(root, {{100000, 65536}}, {{100000, 65536}});
    EXPECT_EQ(with_range.uid_map, (std::vector<IdMap>{{0, 100000, 65536}}));
    EXPECT_FALSE(with_range.deny_setgroups);
    auto without = make_container_mapping(root, {}, {});
    EXPECT_EQ(without.uid_map, (std::vector<IdMap>{{0, kNobodyId, 1}}));
    EXPECT_EQ(without.gid_map, (std::vector<IdMap>{{0, kNobodyId, 1}}));
    EXPECT_FALSE(without.warning.empty());
}

TEST(UsernsMapping, CapsTheNumberOfLines) {
    CurrentUser user{1000, 1000, "alice"};
    std::vector<SubIdRange> many;
    for (uint32_t i = 0; i < 1000; ++i) {
        many.push_back({200000 + i * 10, 10});
    }
    auto mapping = make_container_mapping(user, many, many);
    EXPECT_EQ(mapping.uid_map.size(), kMaxIdMapLines);
}

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Collapses the kernel's column padding: "         0       1001          1".
std::string normalise_map(const std::string& text) {
    std::istringstream in(text);
    std::string out;
    uint64_t a, b, c;
    while (in >> a >> b >> c) {
        out += std::to_string(a) + " " + std::to_string(b) + " " + std::to_string(c) + "\n";
    }
    return out;
}

TEST(RootlessUserns, RunsInAMappedNamespaceAndChownsThroughTheRange) {
    if (::geteuid() == 0) {
        GTEST_SKIP() << "runs as the unprivileged test user (scripts/test rootless pass)";
    }
    auto mapping = container_mapping();
    ASSERT_TRUE(mapping) << mapping.error().to_string();
    if (mapping->single()) {
        GTEST_SKIP() << "the test user has no subordinate range: " << mapping->warning;
    }
    char dir_template[] = "/tmp/userns-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    std::string dir = dir_template;
    std::string file = dir + "/owned-by-7";

    auto status = run_in_user_namespace(*mapping, [&]() -> Result<int> {
        // Inside: we are root with the full mapping.
        if (::getuid() != 0 || ::getgid() != 0) {
            return internal_error("not root inside: uid {} gid {}", ::getuid(), ::getgid());
        }
        std::string expected = format_id_map(mapping->uid_map);
        std::string seen = normalise_map(read_text("/proc/self/uid_map"));
        if (seen != expected) {
            return internal_error("uid_map `{}` != `{}`", seen, expected);
        }
        int fd = ::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0) {
            return errno_error("creating `{}`", file);
        }
        ::close(fd);
        if (::chown(file.c_str(), 7, 7) != 0) {
            return errno_error("chown `{}` 7:7", file);
        }
        return 42;
    });
    ASSERT_TRUE(status) << status.error().to_string();
    EXPECT_EQ(*status, 42);

    struct stat st;
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    uint32_t host_uid = 0, host_gid = 0;
    ASSERT_TRUE(map_to_host(mapping->uid_map, 7, &host_uid));
    ASSERT_TRUE(map_to_host(mapping->gid_map, 7, &host_gid));
    EXPECT_EQ(st.st_uid, host_uid);
    EXPECT_EQ(st.st_gid, host_gid);
    // The file now belongs to a subordinate id: remove it from inside again.
    auto removed = run_in_user_namespace(*mapping, [&]() -> Result<int> {
        if (::unlink(file.c_str()) != 0) {
            return errno_error("unlink `{}`", file);
        }
        return 0;
    });
    ASSERT_TRUE(removed) << removed.error().to_string();
    ::rmdir(dir.c_str());
}

TEST(RootlessUserns, ChildErrorsArriveWithKindErrnoAndMessage) {
    if (::geteuid() == 0) {
        GTEST_SKIP() << "runs as the unprivileged test user (scripts/test rootless pass)";
    }
    auto mapping = container_mapping();
    ASSERT_TRUE(mapping) << mapping.error().to_string();
    auto status = run_in_user_namespace(*mapping, []() -> Result<int> {
        errno = ENOENT;
        return errno_error("opening `{}`", "/does/not/exist");
    });
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().kind(), ErrorKind::NotFound);
    EXPECT_EQ(status.error().errno_value(), ENOENT);
    EXPECT_EQ(status.error().message(), "opening `/does/not/exist`");
}

TEST(RootlessUserns, SignalledChildReports128PlusSignal) {
    if (::geteuid() == 0) {
        GTEST_SKIP() << "runs as the unprivileged test user (scripts/test rootless pass)";
    }
    auto mapping = container_mapping();
    ASSERT_TRUE(mapping) << mapping.error().to_string();
    auto status = run_in_user_namespace(*mapping, []() -> Result<int> {
        ::raise(SIGKILL);
        return 0;
    });
    ASSERT_TRUE(status) << status.error().to_string();
    EXPECT_EQ(*status, 128 + SIGKILL);
}

TEST(UsernsRoot, RootGetsAMappingNotHostRoot) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "checks the root path";
    }
    auto mapping = container_mapping();
    ASSERT_TRUE(mapping) << mapping.error().to_string();
    uint32_t host = 0;
    ASSERT_TRUE(map_to_host(mapping->uid_map, 0, &host));
    EXPECT_NE(host, 0u);
    auto status = run_in_user_namespace(*mapping, [&]() -> Result<int> {
        std::string seen = normalise_map(read_text("/proc/self/uid_map"));
        return seen == format_id_map(mapping->uid_map) ? 0 : 1;
    });
    ASSERT_TRUE(status) << status.error().to_string();
    EXPECT_EQ(*status, 0);
}

}  // namespace
}  // namespace locald::base
