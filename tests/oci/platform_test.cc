#include "oci/platform.h"

#include <gtest/gtest.h>

namespace locald::oci {
namespace {

Platform p(std::string os, std::string arch, std::string variant = "") {
    return Platform{
        .os = std::move(os), .architecture = std::move(arch), .variant = std::move(variant)};
}

TEST(Platform, NormalizeLikeContainerd) {
    struct Case {
        Platform in;
        std::string out;
    };
    const Case cases[] = {
        {p("Linux", "x86_64"), "linux/amd64"},
        {p("linux", "x86-64", "v1"), "linux/amd64"},
        {p("linux", "amd64", "v3"), "linux/amd64/v3"},
        {p("linux", "aarch64"), "linux/arm64"},
        {p("linux", "arm64", "v8"), "linux/arm64"},
        {p("linux", "arm64", "8"), "linux/arm64"},
        {p("linux", "arm64", "v8.0"), "linux/arm64"},
        {p("linux", "aarch64", "9"), "linux/arm64/v9"},
        {p("linux", "armhf"), "linux/arm/v7"},
        {p("linux", "armel"), "linux/arm/v6"},
        {p("linux", "arm"), "linux/arm/v7"},
        {p("linux", "arm", "7"), "linux/arm/v7"},
        {p("linux", "arm", "6"), "linux/arm/v6"},
        {p("linux", "i386", "x"), "linux/386"},
        {p("macos", "arm64"), "darwin/arm64"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.in.str());
        EXPECT_EQ(normalize(c.in).str(), c.out);
    }
}

TEST(Platform, ParseFlag) {
    EXPECT_EQ(parse_platform("linux/arm64/v8")->str(), "linux/arm64");
    EXPECT_EQ(parse_platform("linux/arm")->str(), "linux/arm/v7");
    EXPECT_EQ(parse_platform("LINUX/X86_64")->str(), "linux/amd64");
    for (const char* bad : {"linux", "", "linux/", "/amd64", "linux/amd64/v2/x", "linux/am d64"}) {
        SCOPED_TRACE(bad);
        auto parsed = parse_platform(bad);
        ASSERT_FALSE(parsed.has_value());
        EXPECT_EQ(parsed.error().kind(), base::ErrorKind::InvalidArgument);
    }
    auto wrong = parse_platform("linux//v7");
    ASSERT_FALSE(wrong.has_value());
    EXPECT_NE(wrong.error().message().find("architecture"), std::string::npos);
}

TEST(Platform, HostIsNormalisedLinux) {
    Platform host = host_platform();
    EXPECT_EQ(host.os, "linux");
    EXPECT_EQ(normalize(host), host);
    EXPECT_FALSE(host.architecture.empty());
}

TEST(PlatformMatcher, Amd64FallsBackToLowerVersionsThen386) {
    PlatformMatcher matcher(p("linux", "amd64", "v3"));
    EXPECT_EQ(matcher.rank(p("linux", "amd64", "v3")), 0);
    EXPECT_EQ(matcher.rank(p("linux", "amd64", "v2")), 1);
    EXPECT_EQ(matcher.rank(p("linux", "amd64")), 2);
    EXPECT_EQ(matcher.rank(p("linux", "x86_64", "v1")), 2);
    EXPECT_EQ(matcher.rank(p("linux", "386")), 3);
    EXPECT_FALSE(matcher.match(p("linux", "amd64", "v4")));
    EXPECT_FALSE(matcher.match(p("linux", "arm64")));
    EXPECT_FALSE(matcher.match(p("windows", "amd64")));

    PlatformMatcher plain(p("linux", "amd64"));
    EXPECT_TRUE(plain.match(p("linux", "amd64")));
    EXPECT_FALSE(plain.match(p("linux", "amd64", "v2")));
    EXPECT_TRUE(plain.match(p("linux", "386")));
}

TEST(PlatformMatcher, ArmVariantsDownToV5) {
    PlatformMatcher matcher(p("linux", "arm"));  // = arm/v7
    EXPECT_EQ(matcher.rank(p("linux", "arm", "v7")), 0);
    EXPECT_EQ(matcher.rank(p("linux", "armhf")), 0);
    EXPECT_EQ(matcher.rank(p("linux", "arm", "v6")), 1);
    EXPECT_EQ(matcher.rank(p("linux", "arm", "v5")), 2);
    EXPECT_FALSE(matcher.match(p("linux", "arm", "v8")));
    EXPECT_FALSE(matcher.match(p("linux", "arm64")));
}

TEST(PlatformMatcher, Arm64AcceptsV8AndThen32BitArm) {
    PlatformMatcher matcher(p("linux", "arm64"));
    EXPECT_EQ(matcher.rank(p("linux", "arm64", "v8")), 0);
    EXPECT_EQ(matcher.rank(p("linux", "aarch64")), 0);
    EXPECT_EQ(matcher.rank(p("linux", "arm", "v8")), 1);
    EXPECT_EQ(matcher.rank(p("linux", "arm", "v7")), 2);
    EXPECT_FALSE(matcher.match(p("linux", "arm64", "v9")));

    PlatformMatcher v9(p("linux", "arm64", "v9"));
    EXPECT_TRUE(v9.match(p("linux", "arm64", "v9")));
    EXPECT_TRUE(v9.match(p("linux", "arm64", "v8.5")));
    EXPECT_TRUE(v9.match(p("linux", "arm64", "v8")));
    EXPECT_LT(*v9.rank(p("linux", "arm64", "v8.5")), *v9.rank(p("linux", "arm64", "v8.1")));
    EXPECT_FALSE(v9.match(p("linux", "arm64", "v8.6")));
}

}  // namespace
}  // namespace locald::oci
