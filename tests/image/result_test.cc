#include "image/result.h"

#include <gtest/gtest.h>

namespace locald::image {
namespace {

PreparedInfo sample() {
    PreparedInfo info;
    info.reference = "localhost/web:1";
    info.image_digest = "sha256:" + std::string(64, 'a');
    info.defaults.entrypoint = {"/entry.sh"};
    info.defaults.cmd = {"serve", "--port", "80"};
    info.defaults.env = {"PATH=/bin", "A=1"};
    info.defaults.working_dir = "/srv";
    info.defaults.user = "app";
    info.rootfs.path = "/data/services/p/web/layer/merged";
    info.rootfs.mounts.push_back(
        {"overlay", "overlay", {"lowerdir=/a:/b", "upperdir=/u", "workdir=/w", "userxattr"}});
    info.container_dir = "/data/services/p/web/layer";
    return info;
}

TEST(PreparedInfoJson, RoundTrips) {
    PreparedInfo info = sample();
    auto text = to_json(info).dump();
    auto json = base::Json::parse(text);
    ASSERT_TRUE(json);
    auto back = prepared_from_json(*json);
    ASSERT_TRUE(back) << back.error().to_string();
    EXPECT_EQ(back->reference, info.reference);
    EXPECT_EQ(back->image_digest, info.image_digest);
    EXPECT_EQ(back->defaults.entrypoint, info.defaults.entrypoint);
    EXPECT_EQ(back->defaults.cmd, info.defaults.cmd);
    EXPECT_EQ(back->defaults.env, info.defaults.env);
    EXPECT_EQ(back->defaults.working_dir, "/srv");
    EXPECT_EQ(back->defaults.user, "app");
    EXPECT_EQ(back->rootfs.path, info.rootfs.path);
    ASSERT_EQ(back->rootfs.mounts.size(), 1u);
    EXPECT_EQ(back->rootfs.mounts[0].type, "overlay");
    EXPECT_EQ(back->rootfs.mounts[0].options, info.rootfs.mounts[0].options);
    EXPECT_EQ(back->container_dir, info.container_dir);
}

TEST(PreparedInfoJson, RejectsBadShapes) {
    auto parse = [](std::string_view text) {
        auto json = base::Json::parse(text);
        EXPECT_TRUE(json);
        return prepared_from_json(*json);
    };
    EXPECT_FALSE(parse("[]"));
    EXPECT_FALSE(parse(R"({"defaults": {}})"));  // no rootfs
    auto relative = parse(R"({"rootfs": {"path": "merged"}})");
    ASSERT_FALSE(relative);
    EXPECT_NE(relative.error().message().find("absolute"), std::string::npos);
    auto cmd = parse(R"({"rootfs": {"path": "/r"}, "defaults": {"cmd": "sh"}})");
    ASSERT_FALSE(cmd);
    EXPECT_NE(cmd.error().message().find("cmd"), std::string::npos);
    EXPECT_FALSE(parse(R"({"rootfs": {"path": "/r"}, "defaults": {"env": [1]}})"));
    EXPECT_FALSE(parse(R"({"rootfs": {"path": "/r", "mounts": ["x"]}})"));
    // Missing optional parts are empty, not errors.
    auto minimal = parse(R"({"rootfs": {"path": "/r"}})");
    ASSERT_TRUE(minimal);
    EXPECT_TRUE(minimal->defaults.cmd.empty());
    EXPECT_TRUE(minimal->rootfs.mounts.empty());
}

}  // namespace
}  // namespace locald::image
