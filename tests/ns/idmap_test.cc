// Tests for the launcher's check of a joined user namespace's maps
// (ns/internal/context.h: parse_id_map_file, check_joined_map): the kernel's
// padded format, malformed text, and a mapping other than the container's.
#include <gtest/gtest.h>

#include "base/sys.h"
#include "base/temp_dir.h"
#include "ns/internal/context.h"

namespace locald::ns::internal {
namespace {

TEST(JoinedMap, ParsesTheKernelsPaddedFormat) {
    auto map = parse_id_map_file(
        "         0       1001          1\n"
        "         1     100000      65536\n");
    ASSERT_TRUE(map) << map.error().to_string();
    EXPECT_EQ(*map, (std::vector<base::IdMap>{{0, 1001, 1}, {1, 100000, 65536}}));
    EXPECT_TRUE(parse_id_map_file("")->empty());
}

TEST(JoinedMap, MalformedLinesAreErrors) {
    EXPECT_FALSE(parse_id_map_file("0 1001\n"));
    EXPECT_FALSE(parse_id_map_file("0 1001 1 7\n"));
    EXPECT_FALSE(parse_id_map_file("0 x 1\n"));
    EXPECT_FALSE(parse_id_map_file("0 1001 99999999999\n"));
}

TEST(JoinedMap, EqualMapsPassInAnyOrderOthersAreRefused) {
    auto dir = base::TempDir::create("locald-idmap-test").release_value();
    std::string file = dir.path() + "/uid_map";
    std::vector<base::IdMap> expected = {{0, 1001, 1}, {1, 100000, 65536}};
    ASSERT_TRUE(base::write_file(file,
                                 "         1     100000      65536\n"
                                 "         0       1001          1\n"));
    EXPECT_TRUE(check_joined_map(file, "uid", expected, "/proc/9/fd/3"));

    // A single mapping (what `unshare --map-root-user` makes) is refused,
    // naming the namespace, both maps and the reason.
    ASSERT_TRUE(base::write_file(file, "         0       1001          1\n"));
    auto refused = check_joined_map(file, "uid", expected, "/proc/9/fd/3");
    ASSERT_FALSE(refused);
    std::string text = refused.error().to_string();
    EXPECT_NE(text.find("/proc/9/fd/3"), std::string::npos) << text;
    EXPECT_NE(text.find("`0 1001 1`"), std::string::npos) << text;
    EXPECT_NE(text.find("0 1001 1;1 100000 65536"), std::string::npos) << text;
    EXPECT_NE(text.find("refusing to run with other ids"), std::string::npos) << text;

    // Another range of the same size is refused too.
    ASSERT_TRUE(base::write_file(file, "0 1001 1\n1 200000 65536\n"));
    EXPECT_FALSE(check_joined_map(file, "uid", expected, "/proc/9/fd/3"));
    // A missing file is an error naming the namespace.
    auto missing = check_joined_map(dir.path() + "/nope", "gid", expected, "/proc/9/fd/3");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().to_string().find("gid map of `/proc/9/fd/3`"), std::string::npos)
        << missing.error().to_string();
}

}  // namespace
}  // namespace locald::ns::internal
