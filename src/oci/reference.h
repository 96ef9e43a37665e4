// oci/reference.h — image references with Docker's grammar and normalisation.
//
// Contract (distribution/reference `ParseNormalizedNamed` + `TagNameOnly`):
//   alpine                      → docker.io/library/alpine:latest
//   user/app:1                  → docker.io/user/app:1
//   index.docker.io/x/y         → docker.io/x/y:latest
//   localhost:5000/ns/repo:tag  → localhost:5000/ns/repo:tag
//   repo:tag@sha256:…           → keeps both; the digest wins for resolution
//   repo@sha256:…               → no tag is added
// The first component is a registry only when it contains `.` or `:` or is
// `localhost`. Path components are lowercase `[a-z0-9]+` joined by `.`, `_`,
// `__` or `-+`; tags are `[\w][\w.-]{0,127}`; the name is at most 255 chars;
// a 64-hex-only name is refused (ambiguous with an image id). Parse errors
// are InvalidArgument saying which part is wrong.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "oci/digest.h"

namespace locald::oci {

inline constexpr std::string_view kDockerHubDomain = "docker.io";
inline constexpr std::string_view kDockerHubApiHost = "registry-1.docker.io";
inline constexpr std::string_view kDockerHubCredentialKey = "https://index.docker.io/v1/";

class Reference {
public:
    // Normalised parse (adds docker.io, library/ and :latest as Docker does).
    static base::Result<Reference> parse(std::string_view text);

    const std::string& domain() const { return m_domain; }  // "docker.io", "localhost:5000"
    const std::string& path() const { return m_path; }      // "library/alpine"
    const std::string& tag() const { return m_tag; }        // "" when digest-only
    const std::optional<Digest>& digest() const { return m_digest; }
    bool has_digest() const { return m_digest.has_value(); }

    // `docker.io/library/alpine`
    std::string name() const;
    // `docker.io/library/alpine:latest[@sha256:…]` (fully qualified).
    std::string str() const;
    // Docker's short form: `alpine:latest`, `user/app:1`, `localhost:5000/x:y`;
    // keeps `docker.io/` when dropping it would change the registry
    // (`docker.io/a.b/c`), so it always parses back to this reference.
    std::string familiar() const;
    // What to ask the registry for: the digest when present, else the tag.
    std::string manifest_reference() const;

    // Host to send API requests to: registry-1.docker.io for Docker Hub.
    std::string api_host() const;
    // Key in docker config.json / auth.json: https://index.docker.io/v1/ for
    // Docker Hub, the domain otherwise.
    std::string credential_key() const;

    // Copies with the tag or digest replaced (the other part is kept).
    Reference with_tag(std::string tag) const;
    Reference with_digest(Digest digest) const;
    Reference without_digest() const;

    friend bool operator==(const Reference&, const Reference&) = default;

private:
    std::string m_domain;
    std::string m_path;
    std::string m_tag;
    std::optional<Digest> m_digest;
};

// True when `host` (domain with optional port) is loopback: localhost,
// 127.0.0.0/8, ::1 — plain HTTP is allowed there.
bool is_loopback_registry(std::string_view host);

}  // namespace locald::oci
