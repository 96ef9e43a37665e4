// oci/registry_config.h — per-registry settings from `<config>/config.toml`
// and `<config>/certs.d/`.
//
// Contract: the registry part of config.toml follows containers'
// registries.conf v2 semantics, reduced to what locald needs:
//
//   offline = true                  # never touch the network (like --offline)
//   [[registry]]
//   prefix = "docker.io/library"    # host[:port][/path…]; "*.example.com" any subdomain
//   location = "mirror.corp/lib"    # optional: rewrites the prefix (pull and push)
//   insecure = true                 # plain HTTP and unverified TLS allowed
//   blocked = true                  # refuse the registry
//   [[registry.mirror]]             # pull only, tried in order, then the primary
//   location = "127.0.0.1:5001/hub"
//   insecure = true
//   pull-from-mirror = "all"        # "digest-only" | "tag-only"
//
// The `[[registry]]` with the longest matching prefix wins. Plain HTTP is
// allowed only for loopback hosts (localhost, 127.0.0.0/8, ::1) and hosts
// marked insecure. TLS material for `host:port` comes from
// `<config>/certs.d/<host:port>/{ca.crt,client.cert,client.key}` and is
// added to the system CAs, never replacing them. Unknown keys elsewhere in
// config.toml belong to other modules and are ignored.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "oci/http.h"
#include "oci/reference.h"

namespace locald::oci {

enum class PullFromMirror { All, DigestOnly, TagOnly };

struct MirrorConfig {
    std::string location;  // host[:port][/path]
    bool insecure = false;
    PullFromMirror pull_from = PullFromMirror::All;
};

struct RegistryEntry {
    std::string prefix;
    std::string location;  // "" = same as prefix
    bool insecure = false;
    bool blocked = false;
    std::vector<MirrorConfig> mirrors;
};

// Where to send requests for one repository.
struct Endpoint {
    std::string host;        // API host[:port] (registry-1.docker.io for docker.io)
    std::string repository;  // path inside that registry
    bool insecure = false;   // plain HTTP allowed / TLS unverified
    bool mirror = false;
};

class RegistryConfig {
public:
    RegistryConfig() = default;

    // Reads `<config_dir>/config.toml` (a missing file is an empty config).
    static base::Result<RegistryConfig> load(const std::string& config_dir);
    // Parses `text`; `config_dir` locates certs.d. Errors name the key.
    static base::Result<RegistryConfig> parse(std::string_view text, const std::string& config_dir,
                                              std::string_view source = "config.toml");

    bool offline() const { return m_offline; }
    void set_offline(bool offline) { m_offline = offline; }
    const std::vector<RegistryEntry>& registries() const { return m_registries; }

    // The entry with the longest prefix matching `name` (domain/path), or null.
    const RegistryEntry* match(std::string_view name) const;

    // Pull: mirrors allowed for this kind of reference, then the primary.
    // Blocked registries are a PermissionDenied error.
    base::Result<std::vector<Endpoint>> pull_endpoints(const Reference& ref) const;
    // Push: the primary only (mirrors never receive pushes).
    base::Result<Endpoint> push_endpoint(const Reference& ref) const;

    // Whether plain HTTP may be used with `host` (host[:port]).
    bool allows_plain_http(std::string_view host) const;
    bool is_insecure(std::string_view host) const;
    // CA / client cert files for `host` under certs.d (only files that exist).
    TlsOptions tls_for(std::string_view host) const;

private:
    bool m_offline = false;
    std::vector<RegistryEntry> m_registries;
    std::string m_certs_dir;
};

// Whether `prefix` matches `name` (exact, `prefix/…`, or wildcard domain).
bool prefix_matches(std::string_view prefix, std::string_view name);

}  // namespace locald::oci
