// Fault injection against an in-process HTTP server: auth challenges and a
// token endpoint, 429 + Retry-After, 5xx, cut bodies resumed with Range,
// servers ignoring or botching Range, wrong digests, cross-host redirects.
// Delays are recorded through the injected sleep, never waited for.
#include <gtest/gtest.h>

#include <fcntl.h>

#include <atomic>
#include <random>

#include "base/sys.h"
#include "base/temp_dir.h"
#include "fake_registry.h"
#include "oci/auth.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/pull.h"
#include "oci/registry_client.h"
#include "oci/store.h"

namespace locald::oci {
namespace {

using testing::FakeRequest;
using testing::FakeResponse;
using testing::FakeServer;

std::string random_bytes(size_t size, unsigned seed) {
    std::mt19937 random(seed);
    std::string out(size, '\0');
    for (auto& c : out) {
        c = static_cast<char>(random() & 0xff);
    }
    return out;
}

// Answers a blob GET, honouring `Range: bytes=N-` when asked to.
FakeResponse serve_blob(const FakeRequest& request, const std::string& data, bool honour_range) {
    FakeResponse response;
    std::string range = request.header("range");
    if (honour_range && range.rfind("bytes=", 0) == 0) {
        size_t start = std::stoul(range.substr(6));
        response.status = 206;
        response.header("Content-Range", "bytes " + std::to_string(start) + "-" +
                                             std::to_string(data.size() - 1) + "/" +
                                             std::to_string(data.size()));
        response.body = data.substr(start);
        return response;
    }
    response.body = data;
    return response;
}

class RegistryFaultTest : public ::testing::Test {
protected:
    void SetUp() override {
        m_dir = base::TempDir::create("oci-fault-test").release_value();
        m_config_dir = m_dir.path() + "/config";
        ASSERT_TRUE(base::mkdir_p(m_config_dir, 0700));
        auto store = ContentStore::open(m_dir.path() + "/data");
        ASSERT_TRUE(store) << store.error().message();
        m_store.emplace(store.release_value());
        m_blob = random_bytes(3 * 1024 * 1024 + 17, 1);
        m_digest = Digest::sha256_of(m_blob);
    }

    TransportOptions options(std::optional<Credentials> credentials = std::nullopt) {
        TransportOptions options;
        options.http = HttpClient::create("locald-test").release_value();
        options.config = RegistryConfig::parse("", m_config_dir).release_value();
        options.credential_sources.locald_auth_file = m_config_dir + "/auth.json";
        options.credentials = std::move(credentials);
        options.retry.max_attempts = 4;
        options.sleep = [this](std::chrono::milliseconds delay) {
            std::lock_guard lock(m_mutex);
            m_sleeps.push_back(delay);
        };
        return options;
    }

    std::unique_ptr<RegistryClient> client(const FakeServer& server,
                                           std::optional<Credentials> credentials = std::nullopt) {
        Endpoint endpoint{server.host(), "test/app", false, false};
        return RegistryClient::create(endpoint, options(std::move(credentials))).release_value();
    }

    Descriptor blob_descriptor() const {
        Descriptor descriptor;
        descriptor.media_type = std::string(media_types::kOciLayerGzip);
        descriptor.digest = m_digest;
        descriptor.size = static_cast<int64_t>(m_blob.size());
        return descriptor;
    }

    std::string blob_path() const { return "/v2/test/app/blobs/" + m_digest.str(); }

    base::TempDir m_dir;
    std::string m_config_dir;
    std::optional<ContentStore> m_store;
    std::string m_blob;
    Digest m_digest;
    std::mutex m_mutex;
    std::vector<std::chrono::milliseconds> m_sleeps;
};

TEST_F(RegistryFaultTest, BearerAnonymousTokenIsCachedPerScope) {
    std::atomic<int> tokens_issued{0};
    std::unique_ptr<FakeServer> server;
    server = std::make_unique<FakeServer>([&](const FakeRequest& request) {
        if (request.path == "/token") {
            ++tokens_issued;
            EXPECT_NE(request.query.find("scope=repository%3Atest%2Fapp%3Apull"),
                      std::string::npos);
            EXPECT_NE(request.query.find("service=fake"), std::string::npos);
            EXPECT_EQ(request.header("authorization"), "");
            FakeResponse response;
            response.body = R"({"token":"anon-token","expires_in":300})";
            return response;
        }
        if (request.header("authorization") != "Bearer anon-token") {
            return testing::error_response(401, "UNAUTHORIZED")
                .header("WWW-Authenticate", "Bearer realm=\"" + server->url() +
                                                "/token\",service=\"fake\",scope=\"x\"");
        }
        if (request.path == blob_path()) {
            return serve_blob(request, m_blob, true);
        }
        return testing::error_response(404, "BLOB_UNKNOWN");
    });
    auto registry = client(*server);
    EXPECT_TRUE(registry->blob_exists(m_digest).value());
    auto fetched = registry->fetch_blob(*m_store, blob_descriptor());
    ASSERT_TRUE(fetched) << fetched.error().message();
    EXPECT_EQ(fetched.value(), static_cast<int64_t>(m_blob.size()));
    EXPECT_TRUE(m_store->has(m_digest));
    EXPECT_EQ(tokens_issued.load(), 1);
}

TEST_F(RegistryFaultTest, BearerWithCredentialsAndRefreshOn401) {
    std::atomic<int> tokens_issued{0};
    std::unique_ptr<FakeServer> server;
    server = std::make_unique<FakeServer>([&](const FakeRequest& request) {
        if (request.path == "/token") {
            EXPECT_EQ(request.header("authorization"), "Basic " + base64_encode("alice:s3cret"));
            EXPECT_NE(request.query.find("account=alice"), std::string::npos);
            int n = ++tokens_issued;
            FakeResponse response;
            response.body = "{\"access_token\":\"tok" + std::to_string(n) + "\"}";
            return response;
        }
        // The first token is "expired" by the time it is used: only tok2 works.
        if (request.header("authorization") != "Bearer tok2") {
            return testing::error_response(401, "UNAUTHORIZED")
                .header("WWW-Authenticate",
                        "Bearer realm=\"" + server->url() + "/token\",service=\"fake\"");
        }
        return serve_blob(request, m_blob, true);
    });
    auto registry = client(*server, Credentials{"alice", "s3cret", "", "test"});
    auto fetched = registry->fetch_blob(*m_store, blob_descriptor());
    ASSERT_TRUE(fetched) << fetched.error().message();
    EXPECT_EQ(tokens_issued.load(), 2);
    EXPECT_TRUE(m_store->has(m_digest));
}

TEST_F(RegistryFaultTest, BasicChallengeSendsCredentials) {
    FakeServer server([&](const FakeRequest& request) {
        if (request.header("authorization") != "Basic " + base64_encode("bob:pw")) {
            return testing::error_response(401, "UNAUTHORIZED")
                .header("WWW-Authenticate", "Basic realm=\"Registry Realm\"");
        }
        return serve_blob(request, m_blob, true);
    });
    auto registry = client(server, Credentials{"bob", "pw", "", "test"});
    auto fetched = registry->fetch_blob(*m_store, blob_descriptor());
    ASSERT_TRUE(fetched) << fetched.error().message();
    EXPECT_TRUE(m_store->has(m_digest));
}

TEST_F(RegistryFaultTest, MissingCredentialsGiveLoginHint) {
    FakeServer server([&](const FakeRequest&) {
        return testing::error_response(401, "UNAUTHORIZED")
            .header("WWW-Authenticate", "Basic realm=\"Registry Realm\"");
    });
    auto registry = client(server);
    auto head = registry->head_manifest("latest");
    ASSERT_FALSE(head);
    EXPECT_EQ(head.error().kind(), base::ErrorKind::Unauthenticated);
    EXPECT_NE(head.error().message().find("locald login " + server.host()), std::string::npos)
        << head.error().message();
}

TEST_F(RegistryFaultTest, TokenRealmMustBeHttpLike) {
    FakeServer server([&](const FakeRequest&) {
        return testing::error_response(401, "UNAUTHORIZED")
            .header("WWW-Authenticate", "Bearer realm=\"ftp://127.0.0.1/token\",service=\"x\"");
    });
    auto registry = client(server, Credentials{"alice", "pw", "", "test"});
    auto exists = registry->blob_exists(m_digest);
    ASSERT_FALSE(exists);
    EXPECT_EQ(exists.error().kind(), base::ErrorKind::Unauthenticated);
    EXPECT_NE(exists.error().message().find("not https"), std::string::npos)
        << exists.error().message();
    // Nothing was ever sent to the bogus realm, and no credentials to anyone.
    for (const auto& request : server.requests()) {
        EXPECT_EQ(request.header("authorization"), "");
    }
}

TEST_F(RegistryFaultTest, TooManyRequestsHonoursRetryAfter) {
    std::atomic<int> calls{0};
    FakeServer server([&](const FakeRequest& request) {
        if (request.path == blob_path() && calls++ == 0) {
            return testing::error_response(429, "TOOMANYREQUESTS").header("Retry-After", "7");
        }
        return serve_blob(request, m_blob, true);
    });
    auto registry = client(server);
    auto fetched = registry->fetch_blob(*m_store, blob_descriptor());
    ASSERT_TRUE(fetched) << fetched.error().message();
    ASSERT_EQ(m_sleeps.size(), 1u);
    EXPECT_EQ(m_sleeps[0], std::chrono::milliseconds(7000));
    EXPECT_TRUE(m_store->has(m_digest));
}

TEST_F(RegistryFaultTest, ServerErrorsThenSuccessWithBackoff) {
    std::atomic<int> calls{0};
    FakeServer server([&](const FakeRequest& request) {
        if (request.path == "/v2/test/app/manifests/latest" && calls++ < 2) {
            return testing::error_response(calls == 1 ? 503 : 500, "UNAVAILABLE");
        }
        std::string manifest =
            R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:)" +
            std::string(64, 'a') + R"(","size":2},"layers":[]})";
        FakeResponse response;
        response.header("Content-Type", std::string(media_types::kOciManifest));
        response.header("Docker-Content-Digest", Digest::sha256_of(manifest).str());
        response.body = manifest;
        return response;
    });
    auto registry = client(server);
    auto manifest = registry->get_manifest("latest", std::nullopt);
    ASSERT_TRUE(manifest) << manifest.error().message();
    EXPECT_EQ(manifest->media_type, media_types::kOciManifest);
    ASSERT_EQ(m_sleeps.size(), 2u);
    // Exponential: the second wait is longer than the first (jitter is ±10%).
    EXPECT_GT(m_sleeps[1], m_sleeps[0]);
}

TEST_F(RegistryFaultTest, PersistentServerErrorIsUnavailable) {
    FakeServer server([&](const FakeRequest&) { return testing::error_response(502, "BAD"); });
    auto registry = client(server);
    auto manifest = registry->get_manifest("latest", std::nullopt);
    ASSERT_FALSE(manifest);
    EXPECT_EQ(manifest.error().kind(), base::ErrorKind::Unavailable);
}

TEST_F(RegistryFaultTest, CutBodyResumesWithRange) {
    std::atomic<int> calls{0};
    const size_t cut = 1024 * 1024 + 5;
    FakeServer server([&](const FakeRequest& request) {
        FakeResponse response = serve_blob(request, m_blob, true);
        if (request.path == blob_path() && calls++ == 0) {
            response.cut_after = cut;
        }
        return response;
    });
    auto registry = client(server);
    auto fetched = registry->fetch_blob(*m_store, blob_descriptor());
    ASSERT_TRUE(fetched) << fetched.error().message();
    auto requests = server.requests_to(blob_path());
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_EQ(requests[0].header("range"), "");
    // Everything received before the cut was kept: the resume starts there.
    EXPECT_EQ(requests[1].header("range"), "bytes=" + std::to_string(cut) + "-");
    EXPECT_TRUE(m_store->verify_blob(m_digest));
}

TEST_F(RegistryFaultTest, ServerIgnoringRangeRestartsFromZero) {
    std::atomic<int> calls{0};
    FakeServer server([&](const FakeRequest& request) {
        FakeResponse response = serve_blob(request, m_blob, false);
        if (request.path == blob_path() && calls++ == 0) {
            response.cut_after = 200000;
        }
        return response;
    });
    auto registry = client(server);
    auto fetched = registry->fetch_blob(*m_store, blob_descriptor());
    ASSERT_TRUE(fetched) << fetched.error().message();
    auto requests = server.requests_to(blob_path());
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_EQ(requests[1].header("range"), "bytes=200000-");
    EXPECT_TRUE(m_store->verify_blob(m_digest));
    EXPECT_EQ(m_store->ingest_offset(m_digest.str()), 0);
}

TEST_F(RegistryFaultTest, WrongContentRangeRestartsWithoutRange) {
    std::atomic<int> calls{0};
    FakeServer server([&](const FakeRequest& request) {
        FakeResponse response = serve_blob(request, m_blob, true);
        if (request.path != blob_path()) {
            return response;
        }
        int n = calls++;
        if (n == 0) {
            response.cut_after = 300000;
        } else if (n == 1) {
            // A 206 that starts at the wrong offset must not be spliced in.
            response.headers.clear();
            response.header("Content-Range", "bytes 0-" + std::to_string(m_blob.size() - 1) + "/" +
                                                 std::to_string(m_blob.size()));
            response.body = m_blob;
        }
        return response;
    });
    auto registry = client(server);
    auto fetched = registry->fetch_blob(*m_store, blob_descriptor());
    ASSERT_TRUE(fetched) << fetched.error().message();
    auto requests = server.requests_to(blob_path());
    ASSERT_EQ(requests.size(), 3u);
    EXPECT_EQ(requests[2].header("range"), "");
    EXPECT_TRUE(m_store->verify_blob(m_digest));
}

TEST_F(RegistryFaultTest, WrongDigestIsDataLossAndNothingKept) {
    std::string wrong = m_blob;
    wrong[12345] ^= 1;
    FakeServer server([&](const FakeRequest& request) { return serve_blob(request, wrong, true); });
    auto registry = client(server);
    auto fetched = registry->fetch_blob(*m_store, blob_descriptor());
    ASSERT_FALSE(fetched);
    EXPECT_EQ(fetched.error().kind(), base::ErrorKind::DataLoss) << fetched.error().message();
    EXPECT_NE(fetched.error().message().find(m_digest.str()), std::string::npos)
        << fetched.error().message();
    EXPECT_FALSE(m_store->has(m_digest));
    EXPECT_EQ(m_store->ingest_offset(m_digest.str()), 0);
}

TEST_F(RegistryFaultTest, OversizedBlobIsDataLoss) {
    std::string longer = m_blob + "extra";
    FakeServer server(
        [&](const FakeRequest& request) { return serve_blob(request, longer, true); });
    auto registry = client(server);
    auto fetched = registry->fetch_blob(*m_store, blob_descriptor());
    ASSERT_FALSE(fetched);
    EXPECT_EQ(fetched.error().kind(), base::ErrorKind::DataLoss) << fetched.error().message();
    EXPECT_FALSE(m_store->has(m_digest));
}

TEST_F(RegistryFaultTest, ManifestDigestMismatches) {
    std::string manifest =
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})";
    FakeServer server([&](const FakeRequest&) {
        FakeResponse response;
        response.header("Content-Type", std::string(media_types::kOciIndex));
        response.header("Docker-Content-Digest", "sha256:" + std::string(64, 'b'));
        response.body = manifest;
        return response;
    });
    auto registry = client(server);
    auto by_tag = registry->get_manifest("latest", std::nullopt);
    ASSERT_FALSE(by_tag);
    EXPECT_EQ(by_tag.error().kind(), base::ErrorKind::DataLoss);
    Digest expected = Digest::parse("sha256:" + std::string(64, 'c')).value();
    auto by_digest = registry->get_manifest(expected.str(), expected);
    ASSERT_FALSE(by_digest);
    EXPECT_EQ(by_digest.error().kind(), base::ErrorKind::DataLoss);
    EXPECT_NE(by_digest.error().message().find(expected.str()), std::string::npos);
}

TEST_F(RegistryFaultTest, OversizedManifestIsRefused) {
    FakeServer server([&](const FakeRequest&) {
        FakeResponse response;
        response.header("Content-Type", std::string(media_types::kOciManifest));
        response.body = std::string(kMaxManifestBytes + 10, ' ');
        return response;
    });
    auto registry = client(server);
    auto manifest = registry->get_manifest("latest", std::nullopt);
    ASSERT_FALSE(manifest);
    EXPECT_NE(manifest.error().message().find("exceeds"), std::string::npos)
        << manifest.error().message();
}

TEST_F(RegistryFaultTest, RedirectToAnotherHostDropsAuthorization) {
    FakeServer cdn([&](const FakeRequest& request) { return serve_blob(request, m_blob, true); });
    FakeServer server([&](const FakeRequest& request) {
        if (request.header("authorization") != "Basic " + base64_encode("bob:pw")) {
            return testing::error_response(401, "UNAUTHORIZED")
                .header("WWW-Authenticate", "Basic realm=\"r\"");
        }
        if (request.path == blob_path()) {
            FakeResponse response;
            response.status = 307;
            response.header("Location", cdn.url() + "/storage/blob?signature=abc");
            return response;
        }
        return testing::error_response(404);
    });
    auto registry = client(server, Credentials{"bob", "pw", "", "test"});
    auto fetched = registry->fetch_blob(*m_store, blob_descriptor());
    ASSERT_TRUE(fetched) << fetched.error().message();
    auto cdn_requests = cdn.requests();
    ASSERT_FALSE(cdn_requests.empty());
    for (const auto& request : cdn_requests) {
        EXPECT_EQ(request.header("authorization"), "") << request.target;
        EXPECT_EQ(request.path, "/storage/blob");
    }
    EXPECT_TRUE(m_store->verify_blob(m_digest));
}

TEST_F(RegistryFaultTest, InterruptedPullLeavesResumableIngest) {
    // A registry that serves a one-layer image and cuts the layer the first time.
    std::string config =
        R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:)" +
        std::string(64, 'd') + R"("]}})";
    Digest config_digest = Digest::sha256_of(config);
    std::string manifest = fmt::format(
        R"({{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}]}})",
        config_digest.str(), config.size(), m_digest.str(), m_blob.size());
    std::atomic<bool> healthy{false};
    FakeServer server([&](const FakeRequest& request) {
        FakeResponse response;
        if (request.path == "/v2/") {
            return response;
        }
        if (request.path == "/v2/test/app/manifests/v1") {
            response.header("Content-Type", std::string(media_types::kOciManifest));
            response.header("Docker-Content-Digest", Digest::sha256_of(manifest).str());
            response.body = manifest;
            return response;
        }
        if (request.path == "/v2/test/app/blobs/" + config_digest.str()) {
            response.body = config;
            return response;
        }
        if (request.path == blob_path()) {
            response = serve_blob(request, m_blob, true);
            if (!healthy) {
                response.cut_after = 1000000;
            }
            return response;
        }
        return testing::error_response(404, "NOT_FOUND");
    });
    PullOptions options;
    options.reference = server.host() + "/test/app:v1";
    options.config_dir = m_config_dir;
    options.retry = RetryPolicy{1, std::chrono::milliseconds(1), std::chrono::milliseconds(1),
                                std::chrono::milliseconds(1)};
    options.sleep = [](std::chrono::milliseconds) {};
    auto first = pull(*m_store, options);
    ASSERT_FALSE(first);
    EXPECT_EQ(first.error().kind(), base::ErrorKind::Unavailable) << first.error().message();
    EXPECT_FALSE(m_store->has(m_digest));
    EXPECT_EQ(m_store->ingest_offset(m_digest.str()), 1000000);
    auto ref = Reference::parse(options.reference).value();
    EXPECT_FALSE(m_store->get_ref(ref.str()).value());

    healthy = true;
    auto second = pull(*m_store, options);
    ASSERT_TRUE(second) << second.error().message();
    auto blob_requests = server.requests_to(blob_path());
    EXPECT_EQ(blob_requests.back().header("range"), "bytes=1000000-");
    EXPECT_EQ(second->bytes_downloaded, static_cast<int64_t>(m_blob.size()) - 1000000);
    EXPECT_TRUE(m_store->get_ref(ref.str()).value());
    EXPECT_TRUE(m_store->verify_blob(Digest::sha256_of(manifest)));

    // Offline, the same ref resolves from the store without any request.
    size_t before = server.requests().size();
    options.offline = true;
    auto offline = pull(*m_store, options);
    ASSERT_TRUE(offline) << offline.error().message();
    EXPECT_TRUE(offline->offline);
    EXPECT_EQ(server.requests().size(), before);
    options.reference = server.host() + "/test/app:other";
    auto missing = pull(*m_store, options);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().kind(), base::ErrorKind::NotFound);
}

TEST_F(RegistryFaultTest, NotFoundNamesRefAndRegistry) {
    FakeServer server([&](const FakeRequest& request) {
        if (request.path == "/v2/") {
            return FakeResponse{};
        }
        return testing::error_response(404, "MANIFEST_UNKNOWN");
    });
    PullOptions options;
    options.reference = server.host() + "/test/app:nope";
    options.config_dir = m_config_dir;
    auto pulled = pull(*m_store, options);
    ASSERT_FALSE(pulled);
    EXPECT_EQ(pulled.error().kind(), base::ErrorKind::NotFound);
    EXPECT_EQ(pulled.error().message(),
              "not found: " + server.host() + "/test/app:nope at " + server.host());
}

TEST_F(RegistryFaultTest, ChunkedUploadWithContentRange) {
    std::mutex mutex;
    std::string received;
    FakeServer server([&](const FakeRequest& request) {
        FakeResponse response;
        if (request.path == "/v2/") {
            return response;
        }
        if (request.method == "POST" && request.path == "/v2/test/app/blobs/uploads/") {
            response.status = 202;
            response.header("Location", "/v2/test/app/blobs/uploads/session1");
            return response;
        }
        if (request.method == "PATCH") {
            std::lock_guard lock(mutex);
            std::string range = request.header("content-range");
            EXPECT_EQ(range, std::to_string(received.size()) + "-" +
                                 std::to_string(received.size() + request.body.size() - 1));
            received += request.body;
            response.status = 202;
            response.header("Location", "/v2/test/app/blobs/uploads/session1");
            response.header("Range", "0-" + std::to_string(received.size() - 1));
            return response;
        }
        if (request.method == "PUT") {
            EXPECT_NE(request.query.find("digest=" + url_escape(m_digest.str())),
                      std::string::npos);
            EXPECT_EQ(received, m_blob);
            response.status = 201;
            return response;
        }
        return testing::error_response(404);
    });
    auto registry = client(server);
    registry->set_monolithic_limit(1024);
    registry->set_chunk_size(1024 * 1024);
    std::string path = m_dir.path() + "/blob";
    ASSERT_TRUE(base::write_file(path, m_blob));
    auto fd = base::open_file(path, O_RDONLY).release_value();
    auto uploaded = registry->upload_blob(m_digest, static_cast<int64_t>(m_blob.size()), fd.get());
    ASSERT_TRUE(uploaded) << uploaded.error().message();
    EXPECT_EQ(server.requests_to("/v2/test/app/blobs/uploads/session1").size(),
              5u);  // 4 PATCH + PUT
}

TEST_F(RegistryFaultTest, IdentityTokenUsesOAuth2RefreshGrant) {
    std::unique_ptr<FakeServer> server;
    server = std::make_unique<FakeServer>([&](const FakeRequest& request) {
        if (request.path == "/oauth2/token") {
            EXPECT_EQ(request.method, "POST");
            EXPECT_NE(request.body.find("grant_type=refresh_token"), std::string::npos);
            EXPECT_NE(request.body.find("refresh_token=my-identity"), std::string::npos);
            EXPECT_NE(request.body.find("scope=repository%3Atest%2Fapp%3Apull"), std::string::npos);
            // The identity token is a secret for the realm only, never a header.
            EXPECT_EQ(request.header("authorization"), "");
            FakeResponse response;
            response.body = R"({"access_token":"oauth-token","expires_in":600})";
            return response;
        }
        if (request.header("authorization") != "Bearer oauth-token") {
            return testing::error_response(401, "UNAUTHORIZED")
                .header("WWW-Authenticate",
                        "Bearer realm=\"" + server->url() + "/oauth2/token\",service=\"fake\"");
        }
        return serve_blob(request, m_blob, true);
    });
    auto registry = client(*server, Credentials{"", "", "my-identity", "test"});
    auto fetched = registry->fetch_blob(*m_store, blob_descriptor());
    ASSERT_TRUE(fetched) << fetched.error().message();
    EXPECT_EQ(server->requests_to("/oauth2/token").size(), 1u);
}

TEST_F(RegistryFaultTest, InsufficientScopeAddsTheScopeFirst) {
    std::unique_ptr<FakeServer> server;
    server = std::make_unique<FakeServer>([&](const FakeRequest& request) {
        if (request.path == "/token") {
            FakeResponse response;
            bool both =
                request.query.find(
                    "scope=repository%3Aother%2Fsrc%3Apull&scope=repository%3Atest%2Fapp%3Apull") !=
                std::string::npos;
            response.body = both ? R"({"token":"wide"})" : R"({"token":"narrow"})";
            return response;
        }
        if (request.header("authorization") != "Bearer wide") {
            return testing::error_response(401, "UNAUTHORIZED")
                .header("WWW-Authenticate",
                        "Bearer realm=\"" + server->url() +
                            "/token\",service=\"fake\",scope=\"repository:other/src:pull\","
                            "error=\"insufficient_scope\"");
        }
        return serve_blob(request, m_blob, true);
    });
    auto registry = client(*server);
    auto fetched = registry->fetch_blob(*m_store, blob_descriptor());
    ASSERT_TRUE(fetched) << fetched.error().message();
}

}  // namespace
}  // namespace locald::oci
