// Unit tests for the registry auth pieces: challenge parsing, token cache,
// token responses, credential lookup order, config.toml registries,
// Retry-After and Content-Range parsing.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "base/sys.h"
#include "base/temp_dir.h"
#include "oci/auth.h"
#include "oci/credentials.h"
#include "oci/registry_client.h"
#include "oci/registry_config.h"
#include "oci/transport.h"

namespace locald::oci {
namespace {

TEST(Challenges, BearerWithQuotedParams) {
    auto challenges = parse_challenges(
        {R"(Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push")"});
    ASSERT_EQ(challenges.size(), 1u);
    EXPECT_EQ(challenges[0].scheme, "bearer");
    EXPECT_EQ(challenges[0].param("realm"), "https://auth.example.com/token");
    EXPECT_EQ(challenges[0].param("service"), "registry.example.com");
    // The comma inside the quoted string belongs to the value.
    EXPECT_EQ(challenges[0].param("scope"), "repository:a/b:pull,push");
}

TEST(Challenges, SeveralChallengesInOneHeader) {
    auto challenges = parse_challenges(
        {R"(Basic realm="Registry Realm", Bearer realm="https://t.example/token", service="svc")"});
    ASSERT_EQ(challenges.size(), 2u);
    EXPECT_EQ(challenges[0].scheme, "basic");
    EXPECT_EQ(challenges[0].param("realm"), "Registry Realm");
    EXPECT_EQ(challenges[1].scheme, "bearer");
    EXPECT_EQ(challenges[1].param("realm"), "https://t.example/token");
    EXPECT_EQ(challenges[1].param("service"), "svc");
}

TEST(Challenges, SeveralHeadersEscapesAndCase) {
    auto challenges =
        parse_challenges({R"(BASIC REALM="a \"quoted\" realm")",
                          R"(bearer realm=https://bare.example/t , error=insufficient_scope)"});
    ASSERT_EQ(challenges.size(), 2u);
    EXPECT_EQ(challenges[0].scheme, "basic");
    EXPECT_EQ(challenges[0].param("realm"), "a \"quoted\" realm");
    EXPECT_EQ(challenges[1].param("realm"), "https://bare.example/t");
    EXPECT_EQ(challenges[1].param("error"), "insufficient_scope");
}

TEST(Challenges, SchemeWithoutParamsAndGarbage) {
    auto challenges =
        parse_challenges({"Negotiate, Basic realm=\"x\"", "", "Bearer realm=\"unterminated"});
    ASSERT_GE(challenges.size(), 2u);
    EXPECT_EQ(challenges[0].scheme, "negotiate");
    EXPECT_TRUE(challenges[0].params.empty());
    EXPECT_EQ(challenges[1].scheme, "basic");
    EXPECT_EQ(challenges[1].param("realm"), "x");
    // The unterminated quote yields no realm rather than a wrong one.
    if (challenges.size() == 3) {
        EXPECT_EQ(challenges[2].param("realm"), "");
    }
}

TEST(Scopes, KeyIsSortedAndUnique) {
    EXPECT_EQ(repository_scope("library/alpine", false), "repository:library/alpine:pull");
    EXPECT_EQ(repository_scope("a/b", true), "repository:a/b:pull,push");
    EXPECT_EQ(scope_key({"repository:b:pull", "repository:a:pull", "repository:b:pull"}),
              "repository:a:pull repository:b:pull");
}

TEST(TokenResponse, TokenOrAccessToken) {
    auto a = parse_token_response(R"({"token":"T1","expires_in":300})");
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_EQ(a->token, "T1");
    EXPECT_EQ(a->expires_in, std::chrono::seconds(300));
    auto b = parse_token_response(R"({"access_token":"T2","refresh_token":"R"})");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->token, "T2");
    EXPECT_EQ(b->refresh_token, "R");
    EXPECT_EQ(b->expires_in, std::chrono::seconds(60));
    // Short lifetimes are raised to 60 s.
    EXPECT_EQ(parse_token_response(R"({"token":"x","expires_in":5})")->expires_in,
              std::chrono::seconds(60));
    auto none = parse_token_response(R"({"something":"else"})");
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().kind(), base::ErrorKind::Unauthenticated);
    EXPECT_FALSE(parse_token_response("not json"));
}

TEST(TokenCache, ExpiresAndIsPerScope) {
    auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
    TokenCache cache([&] { return now; });
    cache.put("r", "repository:a:pull", TokenResponse{"A", std::chrono::seconds(100), ""});
    EXPECT_EQ(cache.get("r", "repository:a:pull").value_or(""), "A");
    EXPECT_FALSE(cache.get("r", "repository:b:pull"));
    EXPECT_FALSE(cache.get("other", "repository:a:pull"));
    now += std::chrono::seconds(89);
    EXPECT_TRUE(cache.get("r", "repository:a:pull"));
    // Expired 10 s early so it never dies in flight.
    now += std::chrono::seconds(2);
    EXPECT_FALSE(cache.get("r", "repository:a:pull"));
}

TEST(Base64, RoundTrip) {
    EXPECT_EQ(base64_encode("user:pass"), "dXNlcjpwYXNz");
    EXPECT_EQ(base64_decode("dXNlcjpwYXNz").value(), "user:pass");
    EXPECT_EQ(base64_decode("YQ==").value(), "a");
    EXPECT_FALSE(base64_decode("abc"));
}

class CredentialsTest : public ::testing::Test {
protected:
    void SetUp() override {
        m_dir = base::TempDir::create("oci-auth-test").release_value();
        m_sources.locald_auth_file = m_dir.path() + "/config/auth.json";
        m_sources.registry_auth_file = m_dir.path() + "/registry-auth.json";
        m_sources.xdg_runtime_auth_file = m_dir.path() + "/run/containers/auth.json";
        m_sources.docker_config_file = m_dir.path() + "/docker/config.json";
        m_sources.helper_dir = m_dir.path() + "/bin";
        ASSERT_TRUE(base::mkdir_p(m_dir.path() + "/bin", 0755));
        ASSERT_TRUE(base::mkdir_p(m_dir.path() + "/docker", 0755));
        ASSERT_TRUE(base::mkdir_p(m_dir.path() + "/run/containers", 0755));
    }
    void write(const std::string& path, const std::string& text, mode_t mode = 0600) {
        ASSERT_TRUE(base::write_file(path, text, mode));
        ::chmod(path.c_str(), mode);
    }
    std::string auth(const std::string& user_pass) { return base64_encode(user_pass); }

    base::TempDir m_dir;
    CredentialSources m_sources;
};

TEST_F(CredentialsTest, NothingConfigured) {
    auto found = lookup_credentials(m_sources, "registry.example", "a/b");
    ASSERT_TRUE(found) << found.error().message();
    EXPECT_FALSE(found.value());
}

TEST_F(CredentialsTest, LookupOrderLocaldFirst) {
    write(m_sources.registry_auth_file,
          R"({"auths":{"registry.example":{"auth":")" + auth("second:b") + R"("}}})");
    write(m_sources.docker_config_file,
          R"({"auths":{"https://registry.example":{"auth":")" + auth("docker:c") + R"("}}})");
    auto found = lookup_credentials(m_sources, "registry.example", "a/b");
    ASSERT_TRUE(found && found.value());
    EXPECT_EQ(found.value()->username, "second");

    ASSERT_TRUE(store_credentials(m_sources.locald_auth_file, "registry.example",
                                  Credentials{"first", "a", "", ""}));
    found = lookup_credentials(m_sources, "registry.example", "a/b");
    ASSERT_TRUE(found && found.value());
    EXPECT_EQ(found.value()->username, "first");
    EXPECT_EQ(found.value()->password, "a");

    // Files are 0600 in a 0700 directory.
    struct stat st {};
    ASSERT_EQ(::stat(m_sources.locald_auth_file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(::stat((m_dir.path() + "/config").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);

    // Docker config is the last resort, matched through a URL key.
    ASSERT_TRUE(erase_credentials(m_sources.locald_auth_file, "registry.example").value());
    ASSERT_TRUE(base::unlink_path(m_sources.registry_auth_file));
    found = lookup_credentials(m_sources, "registry.example", "a/b");
    ASSERT_TRUE(found && found.value());
    EXPECT_EQ(found.value()->username, "docker");
    EXPECT_FALSE(erase_credentials(m_sources.locald_auth_file, "registry.example").value());
}

TEST_F(CredentialsTest, XdgRuntimeBeforeDockerAndMostSpecificKey) {
    write(m_sources.xdg_runtime_auth_file, R"({"auths":{"r.example":{"auth":")" + auth("host:1") +
                                               R"("},)"
                                               R"("r.example/team":{"auth":")" +
                                               auth("team:2") +
                                               R"("},)"
                                               R"("r.example/team/app":{"auth":")" +
                                               auth("app:3") + R"("}}})");
    write(m_sources.docker_config_file,
          R"({"auths":{"r.example":{"auth":")" + auth("docker:4") + R"("}}})");
    EXPECT_EQ(lookup_credentials(m_sources, "r.example", "team/app").value()->username, "app");
    EXPECT_EQ(lookup_credentials(m_sources, "r.example", "team/other").value()->username, "team");
    EXPECT_EQ(lookup_credentials(m_sources, "r.example", "solo").value()->username, "host");
}

TEST_F(CredentialsTest, DockerHubKeyAndIdentityToken) {
    write(m_sources.docker_config_file,
          R"({"auths":{"https://index.docker.io/v1/":{"identitytoken":"IDT"}}})");
    auto found = lookup_credentials(m_sources, "registry-1.docker.io", "library/alpine");
    ASSERT_TRUE(found && found.value()) << (found ? "none" : found.error().message());
    EXPECT_EQ(found.value()->identity_token, "IDT");
    EXPECT_EQ(credential_key("docker.io"), "https://index.docker.io/v1/");
}

TEST_F(CredentialsTest, CredentialHelpers) {
    // A helper that echoes the server URL it was asked about into the secret.
    write(m_sources.helper_dir + "/docker-credential-fake",
          "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread url\n"
          "if [ \"$url\" = nothere.example ]; then echo 'credentials not found in native "
          "keychain'; exit 1; fi\n"
          "printf '{\"ServerURL\":\"%s\",\"Username\":\"helper\",\"Secret\":\"s-%s\"}' \"$url\" "
          "\"$url\"\n",
          0755);
    write(m_sources.helper_dir + "/docker-credential-tok",
          "#!/bin/sh\nread url\nprintf '{\"Username\":\"<token>\",\"Secret\":\"refresh\"}'\n",
          0755);
    write(m_sources.docker_config_file,
          R"({"credHelpers":{"h.example":"fake","t.example":"tok"},"credsStore":"fake",)"
          R"("auths":{"inline.example":{"auth":")" +
              auth("inline:x") + R"("}}})");
    auto helper = lookup_credentials(m_sources, "h.example", "a");
    ASSERT_TRUE(helper && helper.value()) << (helper ? "none" : helper.error().message());
    EXPECT_EQ(helper.value()->username, "helper");
    EXPECT_EQ(helper.value()->password, "s-h.example");
    EXPECT_EQ(lookup_credentials(m_sources, "t.example", "a").value()->identity_token, "refresh");
    // Inline auths win over credsStore; credsStore covers the rest.
    EXPECT_EQ(lookup_credentials(m_sources, "inline.example", "a").value()->username, "inline");
    EXPECT_EQ(lookup_credentials(m_sources, "other.example", "a").value()->password,
              "s-other.example");
    // "not found" from a helper is no credentials, not an error.
    auto missing = lookup_credentials(m_sources, "nothere.example", "a");
    ASSERT_TRUE(missing) << missing.error().message();
    EXPECT_FALSE(missing.value());
}

TEST_F(CredentialsTest, MalformedFileIsAnError) {
    write(m_sources.registry_auth_file, "{not json");
    auto found = lookup_credentials(m_sources, "r.example", "a");
    ASSERT_FALSE(found);
    EXPECT_NE(found.error().message().find("registry-auth.json"), std::string::npos);
}

TEST(RegistryConfigTest, PrefixesMirrorsInsecure) {
    auto config = RegistryConfig::parse(R"(
offline = false
[[registry]]
prefix = "docker.io"
[[registry.mirror]]
location = "127.0.0.1:5001/hub"
[[registry.mirror]]
location = "mirror.example/digests"
pull-from-mirror = "digest-only"

[[registry]]
prefix = "docker.io/library/blocked"
blocked = true

[[registry]]
prefix = "corp.example:8443/team"
location = "other.example/moved"
insecure = true
)",
                                        "/nonexistent");
    ASSERT_TRUE(config) << config.error().message();
    auto tag_ref = Reference::parse("alpine").value();
    auto endpoints = config->pull_endpoints(tag_ref).value();
    ASSERT_EQ(endpoints.size(), 2u);  // the digest-only mirror is skipped for tags
    EXPECT_EQ(endpoints[0].host, "127.0.0.1:5001");
    EXPECT_EQ(endpoints[0].repository, "hub/library/alpine");
    EXPECT_TRUE(endpoints[0].mirror);
    EXPECT_EQ(endpoints[1].host, "registry-1.docker.io");
    EXPECT_EQ(endpoints[1].repository, "library/alpine");
    EXPECT_FALSE(endpoints[1].mirror);

    auto digest_ref = Reference::parse("alpine@sha256:" + std::string(64, 'a')).value();
    EXPECT_EQ(config->pull_endpoints(digest_ref).value().size(), 3u);
    // Pushes never go to mirrors.
    EXPECT_EQ(config->push_endpoint(tag_ref).value().host, "registry-1.docker.io");

    auto blocked = config->pull_endpoints(Reference::parse("blocked").value());
    ASSERT_FALSE(blocked);
    EXPECT_EQ(blocked.error().kind(), base::ErrorKind::PermissionDenied);

    auto moved = config->push_endpoint(Reference::parse("corp.example:8443/team/app:1").value());
    ASSERT_TRUE(moved);
    EXPECT_EQ(moved->host, "other.example");
    EXPECT_EQ(moved->repository, "moved/app");
    EXPECT_TRUE(moved->insecure);
    EXPECT_TRUE(config->allows_plain_http("other.example"));  // insecure applies to the location
    EXPECT_TRUE(config->allows_plain_http("127.0.0.1:9999"));
    EXPECT_TRUE(config->allows_plain_http("localhost:80"));
    EXPECT_FALSE(config->allows_plain_http("docker.io"));
    // Longest prefix wins; prefixes match whole path components only.
    EXPECT_EQ(config->match("docker.io/library/blocked")->prefix, "docker.io/library/blocked");
    EXPECT_EQ(config->match("docker.io/library/blockedx")->prefix, "docker.io");
    EXPECT_EQ(config->match("docker.iox/a"), nullptr);
}

TEST(RegistryConfigTest, WildcardOfflineAndErrors) {
    auto config = RegistryConfig::parse(
        "offline = true\n[[registry]]\nprefix = \"*.corp.example\"\ninsecure = true\n", "/x");
    ASSERT_TRUE(config) << config.error().message();
    EXPECT_TRUE(config->offline());
    EXPECT_TRUE(config->is_insecure("a.b.corp.example"));
    EXPECT_FALSE(config->is_insecure("corp.example"));

    auto bad_type =
        RegistryConfig::parse("[[registry]]\nprefix = \"x\"\ninsecure = \"yes\"\n", "/x");
    ASSERT_FALSE(bad_type);
    EXPECT_NE(bad_type.error().message().find("insecure"), std::string::npos);
    // The error says what was expected, what was found, and where.
    EXPECT_NE(bad_type.error().message().find("`insecure` must be a boolean (true or false), "
                                              "not a string (line 3)"),
              std::string::npos)
        << bad_type.error().message();
    auto bad_mirror = RegistryConfig::parse(
        "[[registry]]\nprefix = \"x\"\n[[registry.mirror]]\nlocation = \"m\"\npull-from-mirror = "
        "\"sometimes\"\n",
        "/x");
    ASSERT_FALSE(bad_mirror);
    EXPECT_NE(bad_mirror.error().message().find("pull-from-mirror"), std::string::npos);
    EXPECT_FALSE(RegistryConfig::parse("[[registry]]\nprefix = \"https://x\"\n", "/x"));
    EXPECT_FALSE(RegistryConfig::parse("this is = = not toml", "/x"));
}

TEST(RegistryConfigTest, ATableHeaderNestedTooDeepIsAnErrorNotACrash) {
    std::string header = "[registry";
    for (int i = 0; i < 100000; ++i) {
        header += ".x";
    }
    auto config = RegistryConfig::parse("offline = false\n" + header + "]\n", "/x", "reg.toml");
    ASSERT_FALSE(config);
    EXPECT_EQ(config.error().message().rfind("reg.toml:2: more than 1024 `.`", 0), 0u)
        << config.error().message();
}

TEST(RegistryConfigTest, CertsDirectory) {
    auto dir = base::TempDir::create("oci-certs-test").release_value();
    ASSERT_TRUE(base::mkdir_p(dir.path() + "/certs.d/r.example:5000", 0700));
    ASSERT_TRUE(base::write_file(dir.path() + "/certs.d/r.example:5000/ca.crt", "x"));
    auto config = RegistryConfig::parse("", dir.path()).value();
    auto tls = config.tls_for("r.example:5000");
    EXPECT_TRUE(tls.verify);
    EXPECT_EQ(tls.ca_file, dir.path() + "/certs.d/r.example:5000/ca.crt");
    EXPECT_EQ(tls.client_cert, "");
    EXPECT_EQ(config.tls_for("r.example").ca_file, "");
    // A host taken from a redirect never reaches outside certs.d.
    ASSERT_TRUE(base::write_file(dir.path() + "/ca.crt", "x"));
    ASSERT_TRUE(base::write_file(dir.path() + "/client.cert", "x"));
    ASSERT_TRUE(base::write_file(dir.path() + "/client.key", "x"));
    for (const char* host : {"..", ".", "", "../r.example:5000", "r.example:5000/.."}) {
        auto outside = config.tls_for(host);
        EXPECT_EQ(outside.ca_file, "") << host;
        EXPECT_EQ(outside.client_cert, "") << host;
    }
}

TEST(RetryAfter, SecondsAndHttpDate) {
    auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
    EXPECT_EQ(parse_retry_after("7", now), std::chrono::milliseconds(7000));
    EXPECT_EQ(parse_retry_after(" 0 ", now), std::chrono::milliseconds(0));
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
              std::chrono::milliseconds(10000));
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
              std::chrono::milliseconds(0));
    EXPECT_FALSE(parse_retry_after("soon", now));
    EXPECT_FALSE(parse_retry_after("", now));
}

TEST(ContentRangeTest, Parse) {
    auto range = parse_content_range("bytes 100-199/200");
    ASSERT_TRUE(range);
    EXPECT_EQ(range->start, 100);
    EXPECT_EQ(range->end, 199);
    EXPECT_EQ(range->total, 200);
    EXPECT_EQ(parse_content_range("bytes 0-9/*")->total, -1);
    EXPECT_FALSE(parse_content_range("bytes 10-5/20"));
    EXPECT_FALSE(parse_content_range("bytes 0-19/20x"));
    EXPECT_FALSE(parse_content_range("bytes 0-20/20"));
    EXPECT_FALSE(parse_content_range("items 0-1/2"));
    EXPECT_FALSE(parse_content_range(""));
}

TEST(HttpUrls, OriginsAndRedirectResolution) {
    auto a = url_origin("https://Registry.Example/v2/").value();
    EXPECT_EQ(a.scheme, "https");
    EXPECT_EQ(a.host, "registry.example");
    EXPECT_EQ(a.port, 443);
    EXPECT_EQ(url_origin("http://[::1]:5000/x").value().host, "::1");
    EXPECT_EQ(url_origin("http://[::1]:5000/x").value().port, 5000);
    EXPECT_FALSE(url_origin("not a url"));
    EXPECT_EQ(resolve_url("https://r.example/v2/a/blobs/x", "/cdn/blob?sig=1").value(),
              "https://r.example/cdn/blob?sig=1");
    EXPECT_EQ(resolve_url("https://r.example/v2/a/blobs/x", "https://cdn.example/b").value(),
              "https://cdn.example/b");
    EXPECT_EQ(url_escape("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
}

}  // namespace
}  // namespace locald::oci
