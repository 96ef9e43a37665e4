#include "oci/auth.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

#include "base/json.h"

namespace locald::oci {

namespace {

bool is_token_char(char c) {
    // RFC 7230 tchar
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string_view text) {
    std::string out(text);
    for (auto& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

// A cursor over one header value.
struct Cursor {
    std::string_view text;
    size_t pos = 0;

    bool done() const { return pos >= text.size(); }
    char peek() const { return done() ? '\0' : text[pos]; }
    void skip_space() {
        while (!done() && (text[pos] == ' ' || text[pos] == '\t')) {
            ++pos;
        }
    }
    void skip_space_and_commas() {
        while (!done() && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == ',')) {
            ++pos;
        }
    }
    std::string token() {
        size_t start = pos;
        while (!done() && is_token_char(text[pos])) {
            ++pos;
        }
        return std::string(text.substr(start, pos - start));
    }
    // After the opening quote; handles backslash escapes. nullopt if unterminated.
    std::optional<std::string> quoted() {
        std::string out;
        while (!done()) {
            char c = text[pos++];
            if (c == '"') {
                return out;
            }
            if (c == '\\' && !done()) {
                c = text[pos++];
            }
            out.push_back(c);
        }
        return std::nullopt;
    }
};

// Parses `key=value` at the cursor; restores the position and returns false
// when what follows is not an auth-param (the start of the next challenge).
bool parse_param(Cursor& cursor, Challenge& challenge) {
    size_t start = cursor.pos;
    cursor.skip_space();
    std::string key = cursor.token();
    cursor.skip_space();
    if (key.empty() || cursor.peek() != '=') {
        cursor.pos = start;
        return false;
    }
    ++cursor.pos;
    cursor.skip_space();
    std::string value;
    if (cursor.peek() == '"') {
        ++cursor.pos;
        auto quoted = cursor.quoted();
        if (!quoted) {
            cursor.pos = cursor.text.size();
            return false;
        }
        value = *quoted;
    } else {
        // A bare value: RFC 7235 says token, but registries send bare URLs;
        // take everything up to the next separator.
        size_t start_value = cursor.pos;
        while (!cursor.done() && cursor.peek() != ',' && cursor.peek() != ' ' &&
               cursor.peek() != '\t') {
            ++cursor.pos;
        }
        value = std::string(cursor.text.substr(start_value, cursor.pos - start_value));
    }
    challenge.params[lower(key)] = value;
    return true;
}

}  // namespace

std::string Challenge::param(std::string_view key) const {
    auto it = params.find(std::string(key));
    return it == params.end() ? std::string() : it->second;
}

std::vector<Challenge> parse_challenges(const std::vector<std::string>& headers) {
    std::vector<Challenge> out;
    for (const auto& header : headers) {
        Cursor cursor{header};
        while (true) {
            cursor.skip_space_and_commas();
            if (cursor.done()) {
                break;
            }
            std::string scheme = cursor.token();
            if (scheme.empty()) {
                break;  // garbage: keep what we have
            }
            Challenge challenge;
            challenge.scheme = lower(scheme);
            cursor.skip_space();
            // Params separated by commas; a token not followed by `=` starts
            // the next challenge.
            while (true) {
                size_t before = cursor.pos;
                cursor.skip_space_and_commas();
                if (cursor.done() || !parse_param(cursor, challenge)) {
                    if (cursor.done()) {
                        break;
                    }
                    cursor.pos = before;
                    break;
                }
            }
            out.push_back(std::move(challenge));
        }
    }
    return out;
}

std::string repository_scope(std::string_view repository, bool push) {
    return fmt::format("repository:{}:{}", repository, push ? "pull,push" : "pull");
}

std::string scope_key(std::vector<std::string> scopes) {
    std::sort(scopes.begin(), scopes.end());
    scopes.erase(std::unique(scopes.begin(), scopes.end()), scopes.end());
    std::string out;
    for (const auto& scope : scopes) {
        if (!out.empty()) {
            out.push_back(' ');
        }
        out += scope;
    }
    return out;
}

base::Result<TokenResponse> parse_token_response(std::string_view body) {
    auto json = base::Json::parse(body);
    if (!json) {
        return base::unauthenticated("token response is not JSON: {}", json.error().message());
    }
    const base::Json& root = json.value();
    if (!root.is_object()) {
        return base::unauthenticated("token response is not a JSON object");
    }
    TokenResponse response;
    for (const char* key : {"token", "access_token"}) {
        const base::Json* value = root.find(key);
        if (value && value->is_string() && !value->as_string().empty()) {
            response.token = value->as_string();
            break;
        }
    }
    if (response.token.empty()) {
        return base::unauthenticated("token response has neither `token` nor `access_token`");
    }
    if (const base::Json* expires = root.find("expires_in"); expires && expires->is_number()) {
        // containers/image raises short lifetimes to 60 s.
        auto seconds = static_cast<int64_t>(expires->as_double());
        response.expires_in = std::chrono::seconds(std::max<int64_t>(seconds, 60));
    }
    if (const base::Json* refresh = root.find("refresh_token"); refresh && refresh->is_string()) {
        response.refresh_token = refresh->as_string();
    }
    return response;
}

TokenCache::TokenCache(Clock clock) : m_clock(std::move(clock)) {}

std::chrono::steady_clock::time_point TokenCache::now() const {
    return m_clock ? m_clock() : std::chrono::steady_clock::now();
}

std::optional<std::string> TokenCache::get(const std::string& registry, const std::string& scopes) {
    std::lock_guard lock(m_mutex);
    auto it = m_tokens.find({registry, scopes});
    if (it == m_tokens.end()) {
        return std::nullopt;
    }
    if (now() >= it->second.expires) {
        m_tokens.erase(it);
        return std::nullopt;
    }
    return it->second.value;
}

void TokenCache::put(const std::string& registry, const std::string& scopes,
                     const TokenResponse& response) {
    std::lock_guard lock(m_mutex);
    // Expire a little early so a token never dies in flight.
    m_tokens[{registry, scopes}] =
        Token{response.token, now() + response.expires_in - std::chrono::seconds(10)};
}

void TokenCache::forget(const std::string& registry, const std::string& scopes) {
    std::lock_guard lock(m_mutex);
    m_tokens.erase({registry, scopes});
}

std::string base64_encode(std::string_view data) {
    std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(data.data()),
                            static_cast<int>(data.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

base::Result<std::string> base64_decode(std::string_view text) {
    std::string clean;
    for (char c : text) {
        if (!std::isspace(static_cast<unsigned char>(c))) {
            clean.push_back(c);
        }
    }
    if (clean.size() % 4 != 0) {
        return base::invalid_argument("invalid base64 (length {})", clean.size());
    }
    std::string out(clean.size() / 4 * 3 + 1, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(clean.data()),
                            static_cast<int>(clean.size()));
    if (n < 0) {
        return base::invalid_argument("invalid base64");
    }
    size_t padding = 0;
    if (!clean.empty() && clean.back() == '=') {
        ++padding;
        if (clean.size() > 1 && clean[clean.size() - 2] == '=') {
            ++padding;
        }
    }
    out.resize(static_cast<size_t>(n) - padding);
    return out;
}

std::string basic_credentials(std::string_view user, std::string_view password) {
    return base64_encode(fmt::format("{}:{}", user, password));
}

}  // namespace locald::oci
