#include "oci/reference.h"

#include <algorithm>
#include <cctype>

namespace locald::oci {

namespace {

constexpr size_t kNameTotalLengthMax = 255;

bool is_lower_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// pathComponent = [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
bool valid_path_component(std::string_view component) {
    size_t i = 0;
    auto alnum_run = [&]() {
        size_t begin = i;
        while (i < component.size() && is_lower_alnum(component[i])) {
            ++i;
        }
        return i > begin;
    };
    if (!alnum_run()) {
        return false;
    }
    while (i < component.size()) {
        char c = component[i];
        if (c == '.') {
            ++i;
        } else if (c == '_') {
            ++i;
            if (i < component.size() && component[i] == '_') {
                ++i;
            }
        } else if (c == '-') {
            while (i < component.size() && component[i] == '-') {
                ++i;
            }
        } else {
            return false;
        }
        if (!alnum_run()) {
            return false;
        }
    }
    return true;
}

// domainNameComponent = [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool valid_domain_component(std::string_view component) {
    if (component.empty()) {
        return false;
    }
    auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
    if (!alnum(component.front()) || !alnum(component.back())) {
        return false;
    }
    return std::all_of(component.begin(), component.end(),
                       [&](char c) { return alnum(c) || c == '-'; });
}

// domain = (domainName | "[" ipv6 "]") (":" [0-9]+)?
std::optional<std::string> domain_problem(std::string_view domain) {
    std::string_view host = domain;
    std::string_view port;
    if (!host.empty() && host.front() == '[') {
        auto close = host.find(']');
        if (close == std::string_view::npos) {
            return "IPv6 address is missing `]`";
        }
        std::string_view address = host.substr(1, close - 1);
        if (address.empty() || !std::all_of(address.begin(), address.end(), [](char c) {
                return std::isxdigit(static_cast<unsigned char>(c)) || c == ':';
            })) {
            return "IPv6 address must be hex digits and `:`";
        }
        std::string_view rest = host.substr(close + 1);
        host = host.substr(0, close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                return "unexpected characters after the IPv6 address";
            }
            port = rest.substr(1);
            if (port.empty()) {
                return "port is empty";
            }
        }
    } else {
        auto colon = host.find(':');
        if (colon != std::string_view::npos) {
            port = host.substr(colon + 1);
            host = host.substr(0, colon);
            if (port.empty()) {
                return "port is empty";
            }
        }
        size_t start = 0;
        while (true) {
            auto dot = host.find('.', start);
            auto component = host.substr(start, dot == std::string_view::npos ? dot : dot - start);
            if (!valid_domain_component(component)) {
                return fmt::format("host component `{}` must be letters, digits and inner `-`",
                                   component);
            }
            if (dot == std::string_view::npos) {
                break;
            }
            start = dot + 1;
        }
    }
    if (!port.empty() &&
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return fmt::format("port `{}` must be digits", port);
    }
    return std::nullopt;
}

// tag = [\w][\w.-]{0,127}
bool valid_tag(std::string_view tag) {
    if (tag.empty() || tag.size() > 128) {
        return false;
    }
    auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    if (!word(tag.front())) {
        return false;
    }
    return std::all_of(tag.begin(), tag.end(),
                       [&](char c) { return word(c) || c == '.' || c == '-'; });
}

bool is_64_hex(std::string_view text) {
    return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

}  // namespace

base::Result<Reference> Reference::parse(std::string_view text) {
    auto fail = [&](std::string why) -> base::Error {
        return base::invalid_argument("invalid reference `{}`: {}", text, why);
    };
    if (text.empty()) {
        return base::invalid_argument("invalid reference: it is empty");
    }
    if (is_64_hex(text)) {
        return fail("a 64-character hex string is an image id, not a repository name");
    }
    Reference ref;
    std::string_view rest = text;
    if (auto at = rest.find('@'); at != std::string_view::npos) {
        auto digest = Digest::parse(rest.substr(at + 1));
        if (!digest) {
            return fail(fmt::format("digest part: {}", digest.error().message()));
        }
        ref.m_digest = digest.release_value();
        rest = rest.substr(0, at);
    }
    // A tag is a `:` after the last `/` (a `:` before it is a port).
    auto last_slash = rest.rfind('/');
    auto colon = rest.rfind(':');
    if (colon != std::string_view::npos &&
        (last_slash == std::string_view::npos || colon > last_slash)) {
        std::string_view tag = rest.substr(colon + 1);
        if (!valid_tag(tag)) {
            return fail(fmt::format(
                "tag `{}` is invalid (1-128 characters of [A-Za-z0-9_.-], not starting with `.` "
                "or `-`)",
                tag));
        }
        ref.m_tag = std::string(tag);
        rest = rest.substr(0, colon);
    }
    if (rest.empty()) {
        return fail("the repository name is empty");
    }
    // splitDockerDomain: the first component is a registry only if it has a
    // `.` or `:`, is `localhost`, or has uppercase letters (which a
    // repository path never may).
    std::string_view domain;
    std::string_view remainder;
    auto slash = rest.find('/');
    if (slash == std::string_view::npos) {
        domain = kDockerHubDomain;
        remainder = rest;
    } else {
        std::string_view first = rest.substr(0, slash);
        bool has_upper =
            std::any_of(first.begin(), first.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
        if (first.find_first_of(".:") == std::string_view::npos && first != "localhost" &&
            !has_upper) {
            domain = kDockerHubDomain;
            remainder = rest;
        } else {
            domain = first;
            remainder = rest.substr(slash + 1);
        }
    }
    if (auto problem = domain_problem(domain)) {
        return fail(fmt::format("registry `{}`: {}", domain, *problem));
    }
    if (domain == "index.docker.io") {
        domain = kDockerHubDomain;
    }
    if (remainder.empty()) {
        return fail("the repository path is empty");
    }
    std::string path(remainder);
    if (domain == kDockerHubDomain && path.find('/') == std::string::npos) {
        path = "library/" + path;
    }
    size_t start = 0;
    while (true) {
        auto next = path.find('/', start);
        std::string_view component =
            std::string_view(path).substr(start, next == std::string::npos ? next : next - start);
        if (!valid_path_component(component)) {
            bool has_upper = std::any_of(component.begin(), component.end(),
                                         [](char c) { return c >= 'A' && c <= 'Z'; });
            if (component.empty()) {
                return fail("the repository path has an empty component");
            }
            return fail(fmt::format("repository path component `{}` {}", component,
                                    has_upper
                                        ? "must be lowercase"
                                        : "must be [a-z0-9] separated by `.`, `_`, `__` or `-`"));
        }
        if (next == std::string::npos) {
            break;
        }
        start = next + 1;
    }
    ref.m_domain = std::string(domain);
    ref.m_path = std::move(path);
    if (ref.name().size() > kNameTotalLengthMax) {
        return fail(fmt::format("the name is {} characters long, more than {}", ref.name().size(),
                                kNameTotalLengthMax));
    }
    if (ref.m_tag.empty() && !ref.m_digest) {
        ref.m_tag = "latest";
    }
    return ref;
}

std::string Reference::name() const {
    return fmt::format("{}/{}", m_domain, m_path);
}

std::string Reference::str() const {
    std::string out = name();
    if (!m_tag.empty()) {
        out += ":" + m_tag;
    }
    if (m_digest) {
        out += "@" + m_digest->str();
    }
    return out;
}

std::string Reference::familiar() const {
    std::string out;
    if (m_domain == kDockerHubDomain) {
        std::string_view path = m_path;
        if (path.starts_with("library/") && path.find('/', 8) == std::string_view::npos) {
            path.remove_prefix(8);
        }
        // Docker drops `docker.io/` unconditionally, but a first component
        // that looks like a registry (`a.b/c`, `localhost/x`) would then be
        // read back as one: keep the domain so the short form names the
        // same image.
        auto slash = path.find('/');
        std::string_view first = path.substr(0, slash);
        if (slash != std::string_view::npos &&
            (first.find_first_of(".:") != std::string_view::npos || first == "localhost")) {
            out = name();
        } else {
            out = std::string(path);
        }
    } else {
        out = name();
    }
    if (!m_tag.empty()) {
        out += ":" + m_tag;
    }
    if (m_digest) {
        out += "@" + m_digest->str();
    }
    return out;
}

std::string Reference::manifest_reference() const {
    return m_digest ? m_digest->str() : m_tag;
}

std::string Reference::api_host() const {
    return m_domain == kDockerHubDomain ? std::string(kDockerHubApiHost) : m_domain;
}

std::string Reference::credential_key() const {
    return m_domain == kDockerHubDomain ? std::string(kDockerHubCredentialKey) : m_domain;
}

Reference Reference::with_tag(std::string tag) const {
    Reference out = *this;
    out.m_tag = std::move(tag);
    return out;
}

Reference Reference::with_digest(Digest digest) const {
    Reference out = *this;
    out.m_digest = std::move(digest);
    return out;
}

Reference Reference::without_digest() const {
    Reference out = *this;
    out.m_digest.reset();
    if (out.m_tag.empty()) {
        out.m_tag = "latest";
    }
    return out;
}

bool is_loopback_registry(std::string_view host) {
    std::string_view name = host;
    if (!name.empty() && name.front() == '[') {
        auto close = name.find(']');
        name = name.substr(1, close == std::string_view::npos ? close : close - 1);
        return name == "::1";
    }
    if (name == "::1") {
        return true;
    }
    if (auto colon = name.rfind(':'); colon != std::string_view::npos) {
        name = name.substr(0, colon);
    }
    if (name == "localhost") {
        return true;
    }
    if (name.starts_with("127.")) {
        int dots = 0;
        for (char c : name) {
            if (c == '.') {
                ++dots;
            } else if (c < '0' || c > '9') {
                return false;
            }
        }
        return dots == 3;
    }
    return false;
}

}  // namespace locald::oci
