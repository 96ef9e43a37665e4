// oci/auth.h — registry authentication: WWW-Authenticate challenges, bearer
// token requests and a per-scope token cache.
//
// Contract: `parse_challenges` reads every challenge of every
// `WWW-Authenticate` header (RFC 7235: several challenges per header, quoted
// strings with escapes, commas inside quotes). `TokenCache` keys tokens by
// (registry, sorted scope set) and treats a token as expired 10 s before
// `expires_in` (raised to 60 s like containers/image). Token requests are
// built here but sent by the transport, which owns the realm checks (https
// unless the registry is plain HTTP; never credentials to another host
// than the realm the registry named).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace locald::oci {

struct Challenge {
    std::string scheme;                         // lower-case: "bearer", "basic"
    std::map<std::string, std::string> params;  // keys lower-case: realm, service, scope, error
    std::string param(std::string_view key) const;
};

// All challenges in `headers` (each a WWW-Authenticate value). Malformed
// trailing garbage in a header is ignored after the last complete challenge.
std::vector<Challenge> parse_challenges(const std::vector<std::string>& headers);

// `repository:NAME:pull` / `repository:NAME:pull,push`.
std::string repository_scope(std::string_view repository, bool push);

// Sorted, de-duplicated, joined by spaces: the cache key of a scope set.
std::string scope_key(std::vector<std::string> scopes);

struct Token {
    std::string value;
    std::chrono::steady_clock::time_point expires;
};

// A token endpoint response: `token` or `access_token`, `expires_in`,
// optional `refresh_token` (returned when an identity token was used).
struct TokenResponse {
    std::string token;
    std::chrono::seconds expires_in{60};
    std::string refresh_token;
};
base::Result<TokenResponse> parse_token_response(std::string_view body);

class TokenCache {
public:
    using Clock = std::function<std::chrono::steady_clock::time_point()>;
    explicit TokenCache(Clock clock = {});

    std::optional<std::string> get(const std::string& registry, const std::string& scopes);
    void put(const std::string& registry, const std::string& scopes, const TokenResponse& response);
    void forget(const std::string& registry, const std::string& scopes);

private:
    std::chrono::steady_clock::time_point now() const;
    Clock m_clock;
    std::mutex m_mutex;
    std::map<std::pair<std::string, std::string>, Token> m_tokens;
};

// base64 of `user:password`.
std::string basic_credentials(std::string_view user, std::string_view password);
std::string base64_encode(std::string_view data);
base::Result<std::string> base64_decode(std::string_view text);

}  // namespace locald::oci
