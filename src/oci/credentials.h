// oci/credentials.h — where registry credentials come from and where
// `locald login` keeps them.
//
// Contract: lookup order (first file with a matching entry wins):
//   1. `<config>/auth.json` (locald's own, written by `login`, 0600 in a 0700 dir)
//   2. `$REGISTRY_AUTH_FILE`
//   3. `$XDG_RUNTIME_DIR/containers/auth.json`
//   4. `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, including
//      `credHelpers` (per registry) and `credsStore` (default helper), run as
//      `docker-credential-NAME get` with the server URL on stdin.
// Within a file, keys are matched most specific first (`host/ns/repo`, …,
// `host`); keys may carry a scheme and a path (`https://host/v1/`). Docker
// Hub's key is `https://index.docker.io/v1/` (also `docker.io`). Secrets are
// never logged or put in error messages.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"

namespace locald::oci {

struct Credentials {
    std::string username;
    std::string password;
    std::string identity_token;  // OAuth2 refresh token (Username `<token>` for helpers)
    std::string source;          // file or helper it came from (for messages)
    bool empty() const { return username.empty() && password.empty() && identity_token.empty(); }
};

struct CredentialSources {
    std::string locald_auth_file;    // `<config>/auth.json`
    std::string registry_auth_file;  // $REGISTRY_AUTH_FILE or ""
    std::string xdg_runtime_auth_file;
    std::string docker_config_file;
    // Prefix for helper binaries; tests point it at a script directory.
    std::string helper_dir;  // "" = search $PATH

    // From the environment ($REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR,
    // $DOCKER_CONFIG, $HOME), with locald's file under `config_dir`.
    static CredentialSources from_environment(const std::string& config_dir);
};

// The key credentials are stored under for `registry` (docker.io →
// `https://index.docker.io/v1/`, else the registry host[:port]).
std::string credential_key(std::string_view registry);

// Looks `registry` (and `repository`, for per-repository keys) up in order.
// nullopt when no source has an entry; an error when a file is unreadable or
// malformed, or a helper fails for another reason than "not found".
base::Result<std::optional<Credentials>> lookup_credentials(const CredentialSources& sources,
                                                            std::string_view registry,
                                                            std::string_view repository);

// Adds or replaces the entry for `registry` in `path` (auth.json format:
// `{"auths": {KEY: {"auth": base64(user:password)}}}`), keeping other
// entries. The directory is made 0700 and the file written atomically 0600.
base::Result<void> store_credentials(const std::string& path, std::string_view registry,
                                     const Credentials& credentials);

// Removes the entry; false when there was none.
base::Result<bool> erase_credentials(const std::string& path, std::string_view registry);

}  // namespace locald::oci
