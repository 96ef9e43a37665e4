#include "oci/transport.h"

#include <arpa/inet.h>

#include <algorithm>
#include <ctime>
#include <random>
#include <thread>

#include "base/json.h"

namespace locald::oci {

namespace {

constexpr int kMaxRedirects = 5;
constexpr size_t kMaxErrorMessage = 300;

bool is_redirect(long status) {
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// Loopback or link-local IP literals (169.254.169.254 is the cloud metadata
// service): a remote registry must not point token requests there.
bool is_sensitive_ip(const std::string& host) {
    in_addr v4{};
    if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
        uint32_t address = ntohl(v4.s_addr);
        return (address >> 24) == 127 || (address >> 16) == 0xa9fe || address == 0;
    }
    in6_addr v6{};
    if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
        return IN6_IS_ADDR_LOOPBACK(&v6) || IN6_IS_ADDR_LINKLOCAL(&v6) ||
               IN6_IS_ADDR_UNSPECIFIED(&v6);
    }
    return host == "localhost";
}

// `host[:port]` as certs.d names it: the port only when it is not the
// scheme's default, IPv6 literals in brackets.
std::string certs_key(const UrlOrigin& origin) {
    std::string host =
        origin.host.find(':') != std::string::npos ? "[" + origin.host + "]" : origin.host;
    bool default_port = (origin.scheme == "https" && origin.port == 443) ||
                        (origin.scheme == "http" && origin.port == 80);
    return default_port ? host : fmt::format("{}:{}", host, origin.port);
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) {
            out += separator;
        }
        out += item;
    }
    return out;
}

std::string truncate(std::string text) {
    if (text.size() > kMaxErrorMessage) {
        text.resize(kMaxErrorMessage);
        text += "…";
    }
    for (auto& c : text) {
        if (static_cast<unsigned char>(c) < 0x20) {
            c = ' ';
        }
    }
    return text;
}

// The registry's `{"errors":[{"code","message"}]}` body, if any.
std::string registry_message(const HttpResponse& response) {
    auto json = base::Json::parse(response.body, {.max_bytes = 64 * 1024, .max_depth = 16});
    if (!json || !json->is_object()) {
        return "";
    }
    const base::Json* errors = json->find("errors");
    if (!errors || !errors->is_array() || errors->as_array().empty()) {
        return "";
    }
    const base::Json& first = errors->as_array().front();
    std::string code, message;
    if (const auto* c = first.find("code"); c && c->is_string()) {
        code = c->as_string();
    }
    if (const auto* m = first.find("message"); m && m->is_string()) {
        message = m->as_string();
    }
    if (code.empty()) {
        return truncate(message);
    }
    return truncate(message.empty() ? code : code + ": " + message);
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now) {
    while (!value.empty() && value.front() == ' ') {
        value.remove_prefix(1);
    }
    while (!value.empty() && value.back() == ' ') {
        value.remove_suffix(1);
    }
    if (value.empty()) {
        return std::nullopt;
    }
    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        if (value.size() > 9) {
            return std::chrono::milliseconds(std::chrono::hours(24));
        }
        return std::chrono::seconds(std::stol(std::string(value)));
    }
    std::tm tm{};
    std::string text(value);
    const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end != '\0') {
        return std::nullopt;
    }
    auto when = std::chrono::system_clock::from_time_t(timegm(&tm));
    if (when <= now) {
        return std::chrono::milliseconds(0);
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(when - now);
}

base::Error http_status_error(const HttpResponse& response, std::string_view what,
                              std::string_view registry) {
    std::string detail = registry_message(response);
    std::string status = detail.empty() ? fmt::format("HTTP {}", response.status)
                                        : fmt::format("HTTP {}: {}", response.status, detail);
    switch (response.status) {
        case 401:
        case 403:
            return base::unauthenticated(
                "{}: `{}` denied access ({}); check the credentials with `locald login {}`", what,
                registry, status, registry);
        case 404:
            return base::not_found("{}: not found at `{}` ({})", what, registry, status);
        case 405:
            return base::unsupported("{}: `{}` does not support this ({})", what, registry, status);
        case 408:
        case 429:
            return base::unavailable("{}: `{}` is rate limiting or timing out ({})", what, registry,
                                     status);
        default:
            if (response.status >= 500) {
                return base::unavailable("{}: `{}` failed ({})", what, registry, status);
            }
            return base::invalid_argument("{}: `{}` refused the request ({})", what, registry,
                                          status);
    }
}

base::Error transport_failure(const HttpResponse& response, std::string_view what,
                              std::string_view registry) {
    switch (response.transport_error) {
        case TransportError::Tls:
            return base::unavailable("{}: TLS connection to `{}` failed: {}", what, registry,
                                     response.transport_message);
        case TransportError::Timeout:
            return base::unavailable("{}: `{}` timed out: {}", what, registry,
                                     response.transport_message);
        case TransportError::TooLarge:
            return base::invalid_argument("{}: the response from `{}` is too large", what,
                                          registry);
        case TransportError::Aborted:
            if (response.abort_error) {
                base::Error error = *response.abort_error;
                return std::move(error.context(what));
            }
            [[fallthrough]];
        default:
            return base::unavailable("{}: cannot reach `{}`: {}", what, registry,
                                     response.transport_message);
    }
}

RegistryTransport::RegistryTransport(Endpoint endpoint, TransportOptions options)
    : m_endpoint(std::move(endpoint)), m_options(std::move(options)) {}

base::Result<std::unique_ptr<RegistryTransport>> RegistryTransport::create(
    Endpoint endpoint, TransportOptions options) {
    if (!options.http) {
        options.http = TRY(HttpClient::create("locald"));
    }
    if (!options.sleep) {
        options.sleep = [](std::chrono::milliseconds delay) { std::this_thread::sleep_for(delay); };
    }
    if (!options.tokens) {
        options.tokens = std::make_shared<TokenCache>(options.clock);
    }
    return std::unique_ptr<RegistryTransport>(
        new RegistryTransport(std::move(endpoint), std::move(options)));
}

void RegistryTransport::update_challenges(const HttpResponse& response) {
    auto headers = response.headers.get_all("www-authenticate");
    if (!headers.empty()) {
        m_challenges = parse_challenges(headers);
    }
}

base::Result<void> RegistryTransport::ping() {
    std::lock_guard lock(m_mutex);
    if (m_pinged) {
        return base::ok();
    }
    std::vector<std::string> schemes = {"https"};
    if (m_options.config.allows_plain_http(m_endpoint.host)) {
        schemes.push_back("http");
    }
    std::optional<HttpResponse> tls_failure;
    std::optional<base::Error> last_error;
    bool answered_plain_http = false;  // http spoke, but not as a registry
    for (const auto& scheme : schemes) {
        HttpRequest request;
        request.url = fmt::format("{}://{}/v2/", scheme, m_endpoint.host);
        request.tls = m_options.config.tls_for(m_endpoint.host);
        request.max_buffered_body = 64 * 1024;
        HttpResponse response;
        for (int attempt = 1;; ++attempt) {
            // The body of /v2/ means nothing; do not buffer it.
            response = TRY(m_options.http->perform(
                request, [](std::string_view, long, const HttpHeaders&) { return base::ok(); }));
            // A TLS handshake against a plain HTTP server is not worth retrying.
            if (!should_retry(response) || attempt >= m_options.retry.max_attempts ||
                (scheme == "https" && schemes.size() > 1 && !response.ok())) {
                break;
            }
            backoff(attempt, &response);
        }
        if (!response.ok()) {
            // Any https failure (a handshake the server aborted because we
            // had no client certificate shows up as a receive error) is
            // kept: if plain http then gets a non-registry answer, the https
            // failure is the real problem.
            if (scheme == "https" && response.transport_error != TransportError::Timeout) {
                tls_failure = response;
            }
            last_error = transport_failure(response, "contacting the registry", m_endpoint.host);
            continue;
        }
        if (response.status == 200 || response.status == 401) {
            m_base_url = fmt::format("{}://{}", scheme, m_endpoint.host);
            m_origin = TRY(url_origin(m_base_url));
            update_challenges(response);
            m_pinged = true;
            return base::ok();
        }
        if (tls_failure) {
            answered_plain_http = true;
            break;  // an https server that refuses our trust: that is the real problem
        }
        last_error =
            http_status_error(response, "contacting the registry (GET /v2/)", m_endpoint.host);
    }
    if (tls_failure &&
        (answered_plain_http || tls_failure->transport_error == TransportError::Tls)) {
        HttpResponse failure = *tls_failure;
        if (failure.transport_error != TransportError::Tls) {
            failure.transport_message = "TLS handshake failed: " + failure.transport_message;
        }
        return transport_failure(failure, "contacting the registry", m_endpoint.host);
    }
    return *last_error;
}

base::Result<std::optional<Credentials>> RegistryTransport::credentials() {
    std::lock_guard lock(m_mutex);
    if (!m_credentials_loaded) {
        if (m_options.credentials) {
            m_credentials = m_options.credentials;
        } else {
            m_credentials = TRY(lookup_credentials(m_options.credential_sources, m_endpoint.host,
                                                   m_endpoint.repository));
        }
        m_credentials_loaded = true;
    }
    return m_credentials;
}

bool RegistryTransport::has_credentials() {
    auto found = credentials();
    return found && found->has_value();
}

base::Result<void> RegistryTransport::check_realm(const std::string& realm) {
    auto origin = url_origin(realm);
    if (!origin) {
        return base::unauthenticated("registry `{}` named an invalid token realm `{}`",
                                     m_endpoint.host, truncate(realm));
    }
    if (origin->scheme != "https" && !(origin->scheme == "http" && is_plain_http())) {
        return base::unauthenticated(
            "registry `{}` named a token realm that is not https (`{}`); refusing to send "
            "credentials there",
            m_endpoint.host, truncate(realm));
    }
    if (is_sensitive_ip(origin->host) && !is_sensitive_ip(m_origin.host)) {
        return base::unauthenticated(
            "registry `{}` named a token realm on a loopback or link-local address (`{}`); "
            "refusing it",
            m_endpoint.host, truncate(realm));
    }
    return base::ok();
}

base::Result<std::string> RegistryTransport::fetch_token(const Challenge& challenge,
                                                         const std::vector<std::string>& scopes) {
    std::string realm = challenge.param("realm");
    if (realm.empty()) {
        return base::unauthenticated("registry `{}` sent a Bearer challenge without a realm",
                                     m_endpoint.host);
    }
    TRY(check_realm(realm));
    UrlOrigin realm_origin = TRY(url_origin(realm));
    std::string service = challenge.param("service");
    auto creds = TRY(credentials());
    std::string identity = m_refresh_token;
    if (identity.empty() && creds) {
        identity = creds->identity_token;
    }

    auto exchange = [&](HttpRequest request) -> base::Result<HttpResponse> {
        request.tls = m_options.config.tls_for(certs_key(realm_origin));
        request.max_buffered_body = 1 << 20;
        HttpResponse response;
        for (int attempt = 1;; ++attempt) {
            response = TRY(perform(request, {}, false));
            if (!should_retry(response) || attempt >= m_options.retry.max_attempts) {
                return response;
            }
            backoff(attempt, &response);
        }
    };

    std::optional<HttpResponse> response;
    if (!identity.empty()) {
        // OAuth2 refresh-token grant (identity tokens).
        HttpRequest request;
        request.method = "POST";
        request.url = realm;
        request.headers.add("Content-Type", "application/x-www-form-urlencoded");
        request.body = fmt::format("grant_type=refresh_token&refresh_token={}&client_id=locald",
                                   url_escape(identity));
        if (!service.empty()) {
            request.body += "&service=" + url_escape(service);
        }
        if (!scopes.empty()) {
            request.body += "&scope=" + url_escape(join(scopes, " "));
        }
        response = TRY(exchange(request));
        if (response->ok() && (response->status == 404 || response->status == 405)) {
            response.reset();  // no OAuth2 endpoint: fall back to GET
        }
    }
    if (!response) {
        std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
        std::vector<std::string> query;
        if (!service.empty()) {
            query.push_back("service=" + url_escape(service));
        }
        for (const auto& scope : scopes) {
            query.push_back("scope=" + url_escape(scope));
        }
        if (creds && !creds->username.empty()) {
            query.push_back("account=" + url_escape(creds->username));
        }
        HttpRequest request;
        request.url = url + join(query, "&");
        if (creds && !creds->username.empty()) {
            request.headers.add("Authorization",
                                "Basic " + basic_credentials(creds->username, creds->password));
        }
        response = TRY(exchange(request));
    }
    if (!response->ok()) {
        return transport_failure(*response, "requesting a registry token", realm_origin.host);
    }
    if (response->status != 200) {
        base::Error error =
            http_status_error(*response, "requesting a registry token", m_endpoint.host);
        if (response->status == 401 || response->status == 403) {
            return base::unauthenticated(
                "registry `{}` refused {} token for `{}` (HTTP {}); run `locald login {}`",
                m_endpoint.host, creds ? "a" : "an anonymous", join(scopes, " "), response->status,
                m_endpoint.host);
        }
        return error;
    }
    TokenResponse token = TRY(parse_token_response(response->body));
    if (!token.refresh_token.empty()) {
        m_refresh_token = token.refresh_token;
    }
    m_options.tokens->put(m_endpoint.host, scope_key(scopes), token);
    return token.token;
}

base::Result<std::optional<std::string>> RegistryTransport::authorization(
    const std::vector<std::string>& scopes, bool force_refresh) {
    std::lock_guard lock(m_mutex);
    const Challenge* bearer = nullptr;
    const Challenge* basic = nullptr;
    for (const auto& challenge : m_challenges) {
        if (challenge.scheme == "bearer" && !bearer) {
            bearer = &challenge;
        } else if (challenge.scheme == "basic" && !basic) {
            basic = &challenge;
        }
    }
    if (bearer) {
        std::string key = scope_key(scopes);
        if (force_refresh) {
            m_options.tokens->forget(m_endpoint.host, key);
        } else if (auto cached = m_options.tokens->get(m_endpoint.host, key)) {
            return std::optional<std::string>("Bearer " + *cached);
        }
        Challenge copy = *bearer;  // fetch_token may refresh m_challenges
        std::string token = TRY(fetch_token(copy, scopes));
        return std::optional<std::string>("Bearer " + token);
    }
    if (basic) {
        auto creds = TRY(credentials());
        if (creds && !creds->username.empty()) {
            return std::optional<std::string>("Basic " +
                                              basic_credentials(creds->username, creds->password));
        }
    }
    return std::optional<std::string>();
}

base::Result<HttpResponse> RegistryTransport::perform(HttpRequest request, const BodySink& sink,
                                                      bool registry_origin) {
    UrlOrigin authorized = registry_origin ? m_origin : TRY(url_origin(request.url));
    UrlOrigin current = TRY(url_origin(request.url));
    if (current != authorized) {
        // Credentials are only ever sent to the origin they belong to.
        request.headers.remove("authorization");
    }
    for (int redirects = 0;; ++redirects) {
        HttpResponse response = TRY(m_options.http->perform(request, sink));
        if (!response.ok() || !is_redirect(response.status)) {
            return response;
        }
        auto location = response.headers.get("location");
        if (!location) {
            return response;
        }
        if (redirects >= kMaxRedirects) {
            return base::unavailable("too many redirects from `{}`", m_endpoint.host);
        }
        std::string next = TRY(resolve_url(request.url, *location));
        UrlOrigin next_origin = TRY(url_origin(next));
        if (current.scheme == "https" && next_origin.scheme != "https") {
            return base::permission_denied("`{}` redirected from https to plain http (`{}`)",
                                           m_endpoint.host, truncate(next));
        }
        if (next_origin != authorized) {
            // Never re-added, even if a later hop comes back to the registry.
            request.headers.remove("authorization");
            authorized = UrlOrigin{"-", "-", -1};
        }
        current = next_origin;
        request.url = next;
        // certs.d material is per host: the next hop gets its own CA and
        // client certificate (if it has any), never the registry's.
        request.tls = next_origin == m_origin ? m_options.config.tls_for(m_endpoint.host)
                                              : m_options.config.tls_for(certs_key(next_origin));
        if (response.status == 303 ||
            ((response.status == 301 || response.status == 302) && request.method == "POST")) {
            request.method = "GET";
            request.body.clear();
        }
    }
}

base::Result<HttpResponse> RegistryTransport::send(const TransportRequest& request,
                                                   const BodySink& sink) {
    TRY(ping());
    HttpRequest http;
    http.method = request.method;
    http.url = request.path.starts_with("/") ? m_base_url + request.path : request.path;
    http.headers = request.headers;
    http.body = request.body;
    http.reader = request.reader;
    http.reader_size = request.reader_size;
    http.max_buffered_body = request.max_buffered_body;
    http.tls = m_options.config.tls_for(m_endpoint.host);
    if (auto origin = TRY(url_origin(http.url)); origin != m_origin) {
        // An absolute URL (an upload Location) elsewhere: never a downgrade
        // from https (the blob would cross the network in clear), and that
        // host's own certs.d material, never the registry's.
        if (m_origin.scheme == "https" && origin.scheme != "https") {
            return base::permission_denied(
                "`{}` sent a plain http URL (`{}`) for an https registry; refusing it",
                m_endpoint.host, truncate(http.url));
        }
        http.tls = m_options.config.tls_for(certs_key(origin));
    }

    auto auth = TRY(authorization(request.scopes, false));
    if (auth) {
        http.headers.set("Authorization", *auth);
    }
    HttpResponse response = TRY(perform(http, sink, true));
    if (!response.ok() || response.status != 401 || !request.replayable) {
        return response;
    }
    // Expired token, or a challenge asking for more scope: refresh once.
    std::vector<std::string> scopes = request.scopes;
    {
        std::lock_guard lock(m_mutex);
        update_challenges(response);
        for (const auto& challenge : m_challenges) {
            std::string scope = challenge.param("scope");
            if (challenge.scheme == "bearer" && !scope.empty() &&
                std::find(scopes.begin(), scopes.end(), scope) == scopes.end()) {
                // Some registries only look at the first scope.
                scopes.insert(scopes.begin(), scope);
            }
        }
    }
    auth = TRY(authorization(scopes, true));
    if (!auth) {
        return response;
    }
    http.headers.set("Authorization", *auth);
    return perform(http, sink, true);
}

bool RegistryTransport::should_retry(const HttpResponse& response) const {
    if (response.transport_error == TransportError::Network ||
        response.transport_error == TransportError::Timeout) {
        return true;
    }
    if (!response.ok()) {
        return false;
    }
    switch (response.status) {
        case 408:
        case 429:
        case 500:
        case 502:
        case 503:
        case 504:
            return true;
        default:
            return false;
    }
}

void RegistryTransport::backoff(int attempt, const HttpResponse* response) {
    const RetryPolicy& policy = m_options.retry;
    if (response) {
        if (auto header = response->headers.get("retry-after")) {
            if (auto delay = parse_retry_after(*header, std::chrono::system_clock::now())) {
                m_options.sleep(std::min(*delay, policy.max_retry_after));
                return;
            }
        }
    }
    std::chrono::milliseconds delay = policy.initial_backoff * (1LL << std::min(attempt - 1, 16));
    delay = std::min(delay, policy.max_backoff);
    // ±10% jitter so parallel layer retries do not hit the registry in step.
    thread_local std::minstd_rand random(std::random_device{}());
    auto jitter = delay.count() / 10;
    if (jitter > 0) {
        delay += std::chrono::milliseconds(
            std::uniform_int_distribution<int64_t>(-jitter, jitter)(random));
    }
    m_options.sleep(delay);
}

base::Result<HttpResponse> RegistryTransport::send_retrying(const TransportRequest& request) {
    for (int attempt = 1;; ++attempt) {
        HttpResponse response = TRY(send(request));
        if (!should_retry(response) || !request.replayable ||
            attempt >= m_options.retry.max_attempts) {
            return response;
        }
        backoff(attempt, &response);
    }
}

}  // namespace locald::oci
