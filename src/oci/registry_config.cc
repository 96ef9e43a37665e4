#include "oci/registry_config.h"

#include <unistd.h>

#include <toml++/toml.h>

#include <type_traits>

#include "base/sys.h"
#include "base/toml_guard.h"

namespace locald::oci {

namespace {

bool file_exists(const std::string& path) {
    return ::access(path.c_str(), R_OK) == 0;
}

std::string host_of(std::string_view location) {
    return std::string(location.substr(0, location.find('/')));
}

// The network host for a registry domain (Docker Hub's API lives elsewhere).
std::string api_host_for(std::string_view domain) {
    if (domain == kDockerHubDomain || domain == "index.docker.io") {
        return std::string(kDockerHubApiHost);
    }
    return std::string(domain);
}

// Rewrites `name` (domain/path) by replacing `prefix` with `location`, then
// splits into host and repository.
Endpoint endpoint_for(std::string_view name, std::string_view prefix, std::string_view location,
                      bool insecure, bool mirror) {
    std::string rewritten(name);
    if (!location.empty() && !prefix.empty() && !prefix.starts_with("*.")) {
        rewritten = std::string(location) + std::string(name.substr(prefix.size()));
    }
    Endpoint endpoint;
    auto slash = rewritten.find('/');
    endpoint.host = api_host_for(rewritten.substr(0, slash));
    endpoint.repository = slash == std::string::npos ? "" : rewritten.substr(slash + 1);
    endpoint.insecure = insecure;
    endpoint.mirror = mirror;
    return endpoint;
}

std::string_view type_name(toml::node_type type) {
    switch (type) {
        case toml::node_type::string:
            return "a string";
        case toml::node_type::boolean:
            return "a boolean (true or false)";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a number";
        case toml::node_type::table:
            return "a table";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::date:
        case toml::node_type::time:
        case toml::node_type::date_time:
            return "a date/time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

template <typename T>
constexpr toml::node_type expected_type() {
    if constexpr (std::is_same_v<T, bool>) {
        return toml::node_type::boolean;
    } else {
        static_assert(std::is_same_v<T, std::string>);
        return toml::node_type::string;
    }
}

template <typename T>
base::Result<std::optional<T>> optional_value(const toml::table& table, std::string_view key,
                                              std::string_view where) {
    const toml::node* node = table.get(key);
    if (!node) {
        return std::optional<T>();
    }
    auto value = node->value<T>();
    if (!value || node->type() != expected_type<T>()) {
        return base::invalid_argument("{}: `{}` must be {}, not {} (line {})", where, key,
                                      type_name(expected_type<T>()), type_name(node->type()),
                                      node->source().begin.line);
    }
    return std::optional<T>(*value);
}

}  // namespace

bool prefix_matches(std::string_view prefix, std::string_view name) {
    if (prefix.starts_with("*.")) {
        std::string_view domain = name.substr(0, name.find('/'));
        std::string_view suffix = prefix.substr(1);  // ".example.com"
        return domain.size() > suffix.size() && domain.ends_with(suffix);
    }
    if (!name.starts_with(prefix)) {
        return false;
    }
    return name.size() == prefix.size() || name[prefix.size()] == '/' ||
           name[prefix.size()] == ':' || name[prefix.size()] == '@';
}

base::Result<RegistryConfig> RegistryConfig::load(const std::string& config_dir) {
    std::string path = config_dir + "/config.toml";
    auto exists = TRY(base::path_exists(path));
    if (!exists) {
        RegistryConfig config;
        config.m_certs_dir = config_dir + "/certs.d";
        return config;
    }
    auto text = TRY(base::read_file(path, 1 << 20));
    return parse(text, config_dir, path);
}

base::Result<RegistryConfig> RegistryConfig::parse(std::string_view text,
                                                   const std::string& config_dir,
                                                   std::string_view source) {
    RegistryConfig config;
    config.m_certs_dir = config_dir + "/certs.d";
    toml::table root;
    if (size_t line = base::toml_line_nested_too_deep(text); line != 0) {
        return base::invalid_argument(
            "{}:{}: more than {} `.` outside strings on one line (keys nested that deep are "
            "refused)",
            source, line, base::kTomlMaxDotsPerLine);
    }
    try {
        root = toml::parse(text, source);
    } catch (const toml::parse_error& error) {
        return base::invalid_argument("{}:{}:{}: {}", source, error.source().begin.line,
                                      error.source().begin.column, error.description());
    }
    if (auto offline = TRY(optional_value<bool>(root, "offline", source))) {
        config.m_offline = *offline;
    }
    const toml::node* registries = root.get("registry");
    if (!registries) {
        return config;
    }
    const toml::array* array = registries->as_array();
    if (!array) {
        return base::invalid_argument("{}: `registry` must be an array of tables ([[registry]])",
                                      source);
    }
    size_t index = 0;
    for (const toml::node& node : *array) {
        std::string where = fmt::format("{}: registry[{}]", source, index++);
        const toml::table* table = node.as_table();
        if (!table) {
            return base::invalid_argument("{}: must be a table", where);
        }
        RegistryEntry entry;
        auto prefix = TRY(optional_value<std::string>(*table, "prefix", where));
        auto location = TRY(optional_value<std::string>(*table, "location", where));
        if (!prefix && !location) {
            return base::invalid_argument("{}: needs `prefix` or `location`", where);
        }
        entry.prefix = prefix ? *prefix : *location;
        entry.location = location.value_or("");
        if (entry.prefix.empty() || entry.prefix.find("://") != std::string::npos) {
            return base::invalid_argument(
                "{}: `prefix` must be host[:port][/path] without a scheme", where);
        }
        if (entry.prefix.starts_with("*.") && !entry.location.empty()) {
            return base::invalid_argument("{}: a wildcard prefix cannot have a `location`", where);
        }
        entry.insecure = TRY(optional_value<bool>(*table, "insecure", where)).value_or(false);
        entry.blocked = TRY(optional_value<bool>(*table, "blocked", where)).value_or(false);
        if (const toml::node* mirrors = table->get("mirror")) {
            const toml::array* mirror_array = mirrors->as_array();
            if (!mirror_array) {
                return base::invalid_argument("{}: `mirror` must be an array of tables", where);
            }
            size_t mirror_index = 0;
            for (const toml::node& mirror_node : *mirror_array) {
                std::string mirror_where = fmt::format("{}.mirror[{}]", where, mirror_index++);
                const toml::table* mirror_table = mirror_node.as_table();
                if (!mirror_table) {
                    return base::invalid_argument("{}: must be a table", mirror_where);
                }
                MirrorConfig mirror;
                auto mirror_location =
                    TRY(optional_value<std::string>(*mirror_table, "location", mirror_where));
                if (!mirror_location || mirror_location->empty()) {
                    return base::invalid_argument("{}: needs `location`", mirror_where);
                }
                mirror.location = *mirror_location;
                mirror.insecure = TRY(optional_value<bool>(*mirror_table, "insecure", mirror_where))
                                      .value_or(false);
                auto pull_from = TRY(optional_value<std::string>(*mirror_table, "pull-from-mirror",
                                                                 mirror_where))
                                     .value_or("all");
                if (pull_from == "all") {
                    mirror.pull_from = PullFromMirror::All;
                } else if (pull_from == "digest-only") {
                    mirror.pull_from = PullFromMirror::DigestOnly;
                } else if (pull_from == "tag-only") {
                    mirror.pull_from = PullFromMirror::TagOnly;
                } else {
                    return base::invalid_argument(
                        "{}: `pull-from-mirror` must be all, digest-only or tag-only, not `{}`",
                        mirror_where, pull_from);
                }
                entry.mirrors.push_back(std::move(mirror));
            }
        }
        config.m_registries.push_back(std::move(entry));
    }
    return config;
}

const RegistryEntry* RegistryConfig::match(std::string_view name) const {
    const RegistryEntry* best = nullptr;
    for (const auto& entry : m_registries) {
        if (prefix_matches(entry.prefix, name) &&
            (!best || entry.prefix.size() > best->prefix.size())) {
            best = &entry;
        }
    }
    return best;
}

base::Result<std::vector<Endpoint>> RegistryConfig::pull_endpoints(const Reference& ref) const {
    std::string name = ref.name();
    const RegistryEntry* entry = match(name);
    std::vector<Endpoint> out;
    if (!entry) {
        out.push_back(endpoint_for(name, "", "", is_insecure(ref.domain()), false));
        return out;
    }
    if (entry->blocked) {
        return base::permission_denied("registry `{}` is blocked in config.toml", entry->prefix);
    }
    for (const auto& mirror : entry->mirrors) {
        if ((mirror.pull_from == PullFromMirror::DigestOnly && !ref.has_digest()) ||
            (mirror.pull_from == PullFromMirror::TagOnly && ref.has_digest())) {
            continue;
        }
        std::string prefix = entry->prefix.starts_with("*.") ? "" : entry->prefix;
        Endpoint endpoint =
            endpoint_for(name, prefix, mirror.location,
                         mirror.insecure || is_insecure(host_of(mirror.location)), true);
        out.push_back(std::move(endpoint));
    }
    out.push_back(TRY(push_endpoint(ref)));
    return out;
}

base::Result<Endpoint> RegistryConfig::push_endpoint(const Reference& ref) const {
    std::string name = ref.name();
    const RegistryEntry* entry = match(name);
    if (!entry) {
        return endpoint_for(name, "", "", is_insecure(ref.domain()), false);
    }
    if (entry->blocked) {
        return base::permission_denied("registry `{}` is blocked in config.toml", entry->prefix);
    }
    Endpoint endpoint = endpoint_for(name, entry->prefix, entry->location, entry->insecure, false);
    endpoint.insecure = endpoint.insecure || is_insecure(endpoint.host);
    return endpoint;
}

bool RegistryConfig::is_insecure(std::string_view host) const {
    for (const auto& entry : m_registries) {
        std::string entry_host = host_of(entry.location.empty() ? entry.prefix : entry.location);
        if (entry.insecure && (entry_host == host || prefix_matches(entry.prefix, host))) {
            return true;
        }
        for (const auto& mirror : entry.mirrors) {
            if (mirror.insecure && host_of(mirror.location) == host) {
                return true;
            }
        }
    }
    return false;
}

bool RegistryConfig::allows_plain_http(std::string_view host) const {
    return is_loopback_registry(host) || is_insecure(host);
}

TlsOptions RegistryConfig::tls_for(std::string_view host) const {
    TlsOptions tls;
    tls.verify = !is_insecure(host);
    // `host` may come from a redirect: it names one directory of certs.d or
    // nothing (no `..`, no `/`).
    if (host.empty() || host == "." || host == ".." || host.find('/') != std::string_view::npos ||
        host.find('\0') != std::string_view::npos) {
        return tls;
    }
    std::string dir = fmt::format("{}/{}", m_certs_dir, host);
    if (file_exists(dir + "/ca.crt")) {
        tls.ca_file = dir + "/ca.crt";
    }
    if (file_exists(dir + "/client.cert") && file_exists(dir + "/client.key")) {
        tls.client_cert = dir + "/client.cert";
        tls.client_key = dir + "/client.key";
    }
    return tls;
}

}  // namespace locald::oci
