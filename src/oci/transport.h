// oci/transport.h — talking to one registry host: scheme, auth, redirects,
// retries.
//
// Contract:
// - `ping()` sends `GET /v2/` once (https first; plain http only when the
//   config allows it for this host: loopback or `insecure = true`) and keeps
//   the challenges. Later 401s refresh them.
// - Every request is authorised for the scopes it names: Bearer tokens are
//   fetched from the realm (anonymous or with the credentials found for the
//   registry, identity tokens by OAuth2 POST with a GET fallback), cached per
//   scope set, and refetched once on 401 (adding scopes from an
//   `insufficient_scope` challenge). Basic sends the credentials directly.
// - Token realms must be https unless the registry itself is plain HTTP; a
//   realm on a loopback or link-local IP is refused unless it is the
//   registry's own host.
// - Redirects are followed here (at most 5), never by libcurl: when the
//   origin (scheme, host, port) changes, `Authorization` is dropped and is
//   never re-added, and an https → http downgrade is refused.
// - `send_retrying` retries idempotent (or replayable) requests on 408, 429,
//   500, 502, 503, 504 and network errors with exponential backoff (jittered),
//   honouring `Retry-After` (seconds or HTTP-date, capped). Sleeping and the
//   clock are injectable so tests assert delays without waiting.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "oci/auth.h"
#include "oci/credentials.h"
#include "oci/http.h"
#include "oci/registry_config.h"

namespace locald::oci {

struct RetryPolicy {
    int max_attempts = 5;
    std::chrono::milliseconds initial_backoff{500};
    std::chrono::milliseconds max_backoff{20000};
    std::chrono::milliseconds max_retry_after{60000};
};

struct TransportOptions {
    std::shared_ptr<HttpClient> http;
    RegistryConfig config;
    CredentialSources credential_sources;
    // When set, used instead of looking credentials up (login verifies these).
    std::optional<Credentials> credentials;
    RetryPolicy retry;
    std::function<void(std::chrono::milliseconds)> sleep;  // default: this_thread::sleep_for
    TokenCache::Clock clock;                               // default: steady_clock
    std::shared_ptr<TokenCache> tokens;                    // shared between transports
};

struct TransportRequest {
    std::string method = "GET";
    std::string path;  // "/v2/…" (relative to the registry) or an absolute URL
    HttpHeaders headers;
    std::string body;
    BodyReader reader;  // streamed body; not replayable unless `replayable`
    uint64_t reader_size = 0;
    bool replayable = true;  // safe to send again (GET/HEAD/string bodies)
    std::vector<std::string> scopes;
    uint64_t max_buffered_body = 4 << 20;
};

class RegistryTransport {
public:
    static base::Result<std::unique_ptr<RegistryTransport>> create(Endpoint endpoint,
                                                                   TransportOptions options);

    const Endpoint& endpoint() const { return m_endpoint; }
    const std::string& host() const { return m_endpoint.host; }
    // "https://host" (after ping).
    const std::string& base_url() const { return m_base_url; }
    bool is_plain_http() const { return m_base_url.starts_with("http://"); }

    // GET /v2/ (once; later calls return the cached outcome).
    base::Result<void> ping();

    // One authorised exchange (redirects followed, one 401 refresh). The body
    // goes to `sink` for 2xx responses. Network failures are returned in the
    // response (see HttpResponse::transport_error), not as errors.
    base::Result<HttpResponse> send(const TransportRequest& request, const BodySink& sink = {});

    // `send` with retries (buffered bodies only). Returns the last response
    // when retries are exhausted; errors only for auth/config failures.
    base::Result<HttpResponse> send_retrying(const TransportRequest& request);

    // Sleeps before attempt `attempt` (1-based count of failures so far),
    // honouring the response's Retry-After.
    void backoff(int attempt, const HttpResponse* response);
    bool should_retry(const HttpResponse& response) const;
    const RetryPolicy& retry_policy() const { return m_options.retry; }

    // Whether credentials are known for this registry (for error hints).
    bool has_credentials();

private:
    RegistryTransport(Endpoint endpoint, TransportOptions options);
    base::Result<HttpResponse> perform(HttpRequest request, const BodySink& sink,
                                       bool authorized_origin_only);
    base::Result<std::optional<std::string>> authorization(const std::vector<std::string>& scopes,
                                                           bool force_refresh);
    base::Result<std::string> fetch_token(const Challenge& challenge,
                                          const std::vector<std::string>& scopes);
    base::Result<std::optional<Credentials>> credentials();
    base::Result<void> check_realm(const std::string& realm);
    void update_challenges(const HttpResponse& response);

    Endpoint m_endpoint;
    TransportOptions m_options;
    std::string m_base_url;
    UrlOrigin m_origin;
    bool m_pinged = false;
    std::recursive_mutex m_mutex;  // challenges, credentials, ping (token fetches re-enter)
    std::vector<Challenge> m_challenges;
    bool m_credentials_loaded = false;
    std::optional<Credentials> m_credentials;
    std::string m_refresh_token;  // from an identity-token exchange
};

// Parses Retry-After: delta seconds or an HTTP-date relative to `now`.
std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now);

// A registry error response as an Error of the right kind, with the
// registry's own `errors[].message` (size-capped) when it sent one.
base::Error http_status_error(const HttpResponse& response, std::string_view what,
                              std::string_view registry);
// A transport failure (network, TLS, timeout) as an Unavailable error.
base::Error transport_failure(const HttpResponse& response, std::string_view what,
                              std::string_view registry);

}  // namespace locald::oci
