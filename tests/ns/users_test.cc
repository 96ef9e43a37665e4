// Tests for the user/group resolution inside a rootfs (ns/internal/users.cc).
#include <gtest/gtest.h>

#include "ns/internal/context.h"

namespace locald::ns::internal {
namespace {

const char kPasswd[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "# comment\n"
    "broken line\n"
    "app:x:1000:1000:App:/home/app:/bin/sh\n"
    "cnb:x:1001:1002::/home/cnb:/bin/sh\n";
const char kGroup[] =
    "root:x:0:\n"
    "app:x:1000:\n"
    "audio:x:29:app,cnb\n"
    "cnb:x:1002:\n"
    "extra:x:2000:cnb\n";

TEST(NsUsers, ParsesAndSkipsMalformedLines) {
    auto passwd = parse_passwd(kPasswd);
    ASSERT_EQ(passwd.size(), 3u);
    EXPECT_EQ(passwd[1].name, "app");
    EXPECT_EQ(passwd[1].home, "/home/app");
    auto groups = parse_group(kGroup);
    ASSERT_EQ(groups.size(), 5u);
    EXPECT_EQ(groups[2].members, (std::vector<std::string>{"app", "cnb"}));
}

TEST(NsUsers, ResolvesNamesIdsAndGroupsAsDocker) {
    auto passwd = parse_passwd(kPasswd);
    auto groups = parse_group(kGroup);
    auto root = resolve_user_spec("", {}, passwd, groups);
    ASSERT_TRUE(root);
    EXPECT_EQ(root->uid, 0u);
    EXPECT_EQ(root->home, "/root");

    auto cnb = resolve_user_spec("cnb", {}, passwd, groups);
    ASSERT_TRUE(cnb);
    EXPECT_EQ(cnb->uid, 1001u);
    EXPECT_EQ(cnb->gid, 1002u);
    EXPECT_EQ(cnb->groups, (std::vector<gid_t>{29, 2000}));

    auto numeric = resolve_user_spec("1000:audio", {"2000"}, passwd, groups);
    ASSERT_TRUE(numeric);
    EXPECT_EQ(numeric->uid, 1000u);
    EXPECT_EQ(numeric->gid, 29u);
    EXPECT_EQ(numeric->home, "/home/app");
    EXPECT_EQ(numeric->groups, (std::vector<gid_t>{2000}));

    // A uid the image does not know is fine (gid 0, no home), as Docker.
    auto unknown = resolve_user_spec("4242:4343", {}, passwd, groups);
    ASSERT_TRUE(unknown);
    EXPECT_EQ(unknown->uid, 4242u);
    EXPECT_EQ(unknown->gid, 4343u);
    EXPECT_TRUE(unknown->home.empty());

    auto missing = resolve_user_spec("nobody-here", {}, passwd, groups);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().kind(), base::ErrorKind::NotFound);
    EXPECT_FALSE(resolve_user_spec("app:nogroup", {}, passwd, groups));
    EXPECT_FALSE(resolve_user_spec("app:", {}, passwd, groups));
}

TEST(NsUsers, EnvironmentAddsHomeAndPathUnlessExact) {
    ContainerSpec spec;
    spec.env = {"FOO=1", "PATH=/custom"};
    ResolvedUser user;
    user.home = "/home/app";
    auto env = build_environment(spec, user);
    EXPECT_EQ(env, (std::vector<std::string>{"FOO=1", "PATH=/custom", "HOME=/home/app"}));
    spec.env = {"HOME=/h"};
    env = build_environment(spec, ResolvedUser{});
    EXPECT_EQ(env[0], "HOME=/h");
    EXPECT_EQ(env[1].rfind("PATH=", 0), 0u);
    EXPECT_EQ(env.size(), 2u);
    spec.exact_env = true;
    spec.env = {"ONLY=this"};
    EXPECT_EQ(build_environment(spec, user), (std::vector<std::string>{"ONLY=this"}));
}

}  // namespace
}  // namespace locald::ns::internal
