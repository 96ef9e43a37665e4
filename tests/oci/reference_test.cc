#include "oci/reference.h"

#include <gtest/gtest.h>

#include <utility>

namespace locald::oci {
namespace {

struct ValidCase {
    const char* input;
    const char* domain;
    const char* path;
    const char* tag;
    const char* digest;  // "" for none
    const char* canonical;
    const char* familiar;
};

const char kHex[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

TEST(Reference, ValidTable) {
    std::string d = std::string("sha256:") + kHex;
    const ValidCase cases[] = {
        {"alpine", "docker.io", "library/alpine", "latest", "", "docker.io/library/alpine:latest",
         "alpine:latest"},
        {"alpine:3.19", "docker.io", "library/alpine", "3.19", "", "docker.io/library/alpine:3.19",
         "alpine:3.19"},
        {"user/app:1", "docker.io", "user/app", "1", "", "docker.io/user/app:1", "user/app:1"},
        {"docker.io/alpine", "docker.io", "library/alpine", "latest", "",
         "docker.io/library/alpine:latest", "alpine:latest"},
        {"index.docker.io/x/y", "docker.io", "x/y", "latest", "", "docker.io/x/y:latest",
         "x/y:latest"},
        {"localhost/foo", "localhost", "foo", "latest", "", "localhost/foo:latest",
         "localhost/foo:latest"},
        {"localhost:5000/ns/repo:tag", "localhost:5000", "ns/repo", "tag", "",
         "localhost:5000/ns/repo:tag", "localhost:5000/ns/repo:tag"},
        {"ghcr.io/a/b/c:v1.0-rc_1", "ghcr.io", "a/b/c", "v1.0-rc_1", "", "ghcr.io/a/b/c:v1.0-rc_1",
         "ghcr.io/a/b/c:v1.0-rc_1"},
        {"127.0.0.1:41234/busy", "127.0.0.1:41234", "busy", "latest", "",
         "127.0.0.1:41234/busy:latest", "127.0.0.1:41234/busy:latest"},
        {"[::1]:5001/x", "[::1]:5001", "x", "latest", "", "[::1]:5001/x:latest",
         "[::1]:5001/x:latest"},
        {"a/b-c__d---e.f_g", "docker.io", "a/b-c__d---e.f_g", "latest", "",
         "docker.io/a/b-c__d---e.f_g:latest", "a/b-c__d---e.f_g:latest"},
        {"Example.com/x", "Example.com", "x", "latest", "", "Example.com/x:latest",
         "Example.com/x:latest"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.input);
        auto ref = Reference::parse(c.input);
        ASSERT_TRUE(ref.has_value()) << ref.error().message();
        EXPECT_EQ(ref->domain(), c.domain);
        EXPECT_EQ(ref->path(), c.path);
        EXPECT_EQ(ref->tag(), c.tag);
        EXPECT_FALSE(ref->has_digest());
        EXPECT_EQ(ref->str(), c.canonical);
        EXPECT_EQ(ref->familiar(), c.familiar);
    }
}

// Seen with fuzz/oci_text_fuzz: `docker.io/a.b/c` printed as `a.b/c:latest`,
// which parses as the repository `c` on the registry `a.b`.
TEST(Reference, FamiliarFormNamesTheSameImage) {
    const std::pair<const char*, const char*> cases[] = {
        {"docker.io/a.b/c", "docker.io/a.b/c:latest"},
        {"docker.io/localhost/x:1", "docker.io/localhost/x:1"},
        {"index.docker.io/a.b/c/d", "docker.io/a.b/c/d:latest"},
        {"docker.io/a.b", "a.b:latest"},  // one component: always Docker Hub's library/
        {"docker.io/ab/c", "ab/c:latest"},
        {"a.b/c", "a.b/c:latest"},
    };
    for (const auto& [input, familiar] : cases) {
        SCOPED_TRACE(input);
        auto ref = Reference::parse(input);
        ASSERT_TRUE(ref.has_value()) << ref.error().message();
        EXPECT_EQ(ref->familiar(), familiar);
        auto again = Reference::parse(ref->familiar());
        ASSERT_TRUE(again.has_value()) << again.error().message();
        EXPECT_EQ(again->str(), ref->str());
    }
}

TEST(Reference, DigestWinsAndNoLatestIsAdded) {
    std::string digest = std::string("sha256:") + kHex;
    auto by_digest = Reference::parse("alpine@" + digest);
    ASSERT_TRUE(by_digest.has_value()) << by_digest.error().message();
    EXPECT_EQ(by_digest->tag(), "");
    EXPECT_EQ(by_digest->str(), "docker.io/library/alpine@" + digest);
    EXPECT_EQ(by_digest->manifest_reference(), digest);

    auto both = Reference::parse("localhost:5000/ns/repo:tag@" + digest);
    ASSERT_TRUE(both.has_value()) << both.error().message();
    EXPECT_EQ(both->tag(), "tag");
    EXPECT_EQ(both->digest()->str(), digest);
    EXPECT_EQ(both->manifest_reference(), digest);
    EXPECT_EQ(both->str(), "localhost:5000/ns/repo:tag@" + digest);
    EXPECT_EQ(both->without_digest().str(), "localhost:5000/ns/repo:tag");
}

TEST(Reference, DockerHubHostAndCredentialKey) {
    auto hub = Reference::parse("alpine").release_value();
    EXPECT_EQ(hub.api_host(), "registry-1.docker.io");
    EXPECT_EQ(hub.credential_key(), "https://index.docker.io/v1/");
    auto local = Reference::parse("localhost:5000/x").release_value();
    EXPECT_EQ(local.api_host(), "localhost:5000");
    EXPECT_EQ(local.credential_key(), "localhost:5000");
}

struct InvalidCase {
    std::string input;
    const char* expected_fragment;  // which part is wrong
};

TEST(Reference, InvalidTableNamesThePart) {
    const InvalidCase cases[] = {
        {"", "empty"},
        {"Alpine", "must be lowercase"},
        {"user/App", "must be lowercase"},
        {"alpine:", "tag ``"},
        {"alpine:-bad", "tag `-bad`"},
        {"alpine:" + std::string(129, 'a'), "tag"},
        {"alpine@sha256:abc", "digest part"},
        {"alpine@md5:" + std::string(32, 'a'), "unsupported algorithm"},
        {"alpine@sha256:" + std::string(64, 'A'), "lowercase"},
        {"foo..bar/x", "host component"},
        {"-host.com/x", "host component"},
        {"host.com:port/x", "port `port`"},
        {"host.com/", "repository path is empty"},
        {"a//b", "empty component"},
        {"a/b_-c", "must be [a-z0-9]"},
        {"a/.b", "must be [a-z0-9]"},
        {"a/b.", "must be [a-z0-9]"},
        {"a/b___c", "must be [a-z0-9]"},
        {std::string(kHex), "image id"},
        {"x/" + std::string(260, 'a'), "more than 255"},
        {"[::1/x", "IPv6"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.input);
        auto ref = Reference::parse(c.input);
        ASSERT_FALSE(ref.has_value()) << "parsed as " << ref->str();
        EXPECT_EQ(ref.error().kind(), base::ErrorKind::InvalidArgument);
        EXPECT_NE(ref.error().message().find(c.expected_fragment), std::string::npos)
            << ref.error().message();
    }
}

TEST(Reference, LoopbackRegistries) {
    EXPECT_TRUE(is_loopback_registry("localhost"));
    EXPECT_TRUE(is_loopback_registry("localhost:5000"));
    EXPECT_TRUE(is_loopback_registry("127.0.0.1:41234"));
    EXPECT_TRUE(is_loopback_registry("127.9.8.7"));
    EXPECT_TRUE(is_loopback_registry("[::1]:5000"));
    EXPECT_FALSE(is_loopback_registry("127.0.0.1.example.com"));
    EXPECT_FALSE(is_loopback_registry("docker.io"));
    EXPECT_FALSE(is_loopback_registry("10.0.0.1:5000"));
    EXPECT_FALSE(is_loopback_registry("localhost.evil.com"));
}

}  // namespace
}  // namespace locald::oci
