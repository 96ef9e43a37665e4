#include "oci/credentials.h"

#include <sys/stat.h>

#include <cstdlib>
#include <vector>

#include "base/atomic_file.h"
#include "base/json.h"
#include "base/subprocess.h"
#include "base/sys.h"
#include "oci/auth.h"

namespace locald::oci {

namespace {

constexpr size_t kMaxAuthFileBytes = 4 * 1024 * 1024;

std::string getenv_string(const char* name) {
    const char* value = std::getenv(name);
    return value ? value : "";
}

bool is_docker_hub(std::string_view host) {
    return host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io";
}

// A key from a file (`https://index.docker.io/v1/`, `host:5000`,
// `host/ns/repo`) in the form we compare: no scheme; when a scheme was
// present, no path either (docker-style URL keys name a registry).
std::string normalise_key(std::string_view key) {
    bool had_scheme = false;
    for (std::string_view scheme : {"https://", "http://"}) {
        if (key.starts_with(scheme)) {
            key.remove_prefix(scheme.size());
            had_scheme = true;
        }
    }
    std::string out(key);
    if (had_scheme) {
        out = out.substr(0, out.find('/'));
    }
    while (!out.empty() && out.back() == '/') {
        out.pop_back();
    }
    auto slash = out.find('/');
    std::string host = out.substr(0, slash);
    if (is_docker_hub(host)) {
        out = "docker.io" + (slash == std::string::npos ? std::string() : out.substr(slash));
    }
    return out;
}

// `host/ns/repo`, `host/ns`, `host`: most specific first.
std::vector<std::string> candidate_keys(std::string_view registry, std::string_view repository) {
    std::string host = normalise_key(registry);
    std::vector<std::string> out;
    std::string path(repository);
    while (!path.empty()) {
        out.push_back(host + "/" + path);
        auto slash = path.rfind('/');
        path = slash == std::string::npos ? std::string() : path.substr(0, slash);
    }
    out.push_back(host);
    return out;
}

base::Result<std::optional<base::Json>> read_json_file(const std::string& path) {
    if (path.empty()) {
        return std::optional<base::Json>();
    }
    auto exists = base::path_exists(path);
    if (!exists || !exists.value()) {
        return std::optional<base::Json>();
    }
    auto text = TRY(base::read_file(path, kMaxAuthFileBytes)
                        .context(fmt::format("reading credentials file `{}`", path)));
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
        return std::optional<base::Json>();
    }
    auto json = base::Json::parse(text);
    if (!json) {
        return base::invalid_argument("credentials file `{}` is not valid JSON: {}", path,
                                      json.error().message());
    }
    if (!json->is_object()) {
        return base::invalid_argument("credentials file `{}` is not a JSON object", path);
    }
    return std::optional<base::Json>(json.release_value());
}

// One `auths` entry → Credentials. Fields: auth (base64 user:pass),
// username/password, identitytoken.
base::Result<std::optional<Credentials>> entry_credentials(const base::Json& entry,
                                                           const std::string& source) {
    if (!entry.is_object()) {
        return std::optional<Credentials>();
    }
    Credentials credentials;
    credentials.source = source;
    if (const auto* auth = entry.find("auth");
        auth && auth->is_string() && !auth->as_string().empty()) {
        auto decoded = base64_decode(auth->as_string());
        if (!decoded) {
            return base::invalid_argument("`{}`: an `auth` value is not valid base64", source);
        }
        auto colon = decoded->find(':');
        if (colon == std::string::npos) {
            return base::invalid_argument("`{}`: an `auth` value is not `user:password`", source);
        }
        credentials.username = decoded->substr(0, colon);
        credentials.password = decoded->substr(colon + 1);
    }
    if (const auto* user = entry.find("username"); user && user->is_string()) {
        credentials.username = user->as_string();
    }
    if (const auto* password = entry.find("password"); password && password->is_string()) {
        credentials.password = password->as_string();
    }
    if (const auto* token = entry.find("identitytoken"); token && token->is_string()) {
        credentials.identity_token = token->as_string();
    }
    if (credentials.empty()) {
        return std::optional<Credentials>();
    }
    return std::optional<Credentials>(std::move(credentials));
}

// Finds the most specific `auths` key for the candidates in `file`.
base::Result<std::optional<Credentials>> lookup_in_auths(const base::Json& root,
                                                         const std::vector<std::string>& keys,
                                                         const std::string& source) {
    const base::Json* auths = root.find("auths");
    if (!auths || !auths->is_object()) {
        return std::optional<Credentials>();
    }
    for (const auto& wanted : keys) {
        for (const auto& [key, entry] : auths->as_object()) {
            if (normalise_key(key) == wanted) {
                auto found = TRY(entry_credentials(entry, source));
                if (found) {
                    return found;
                }
            }
        }
    }
    return std::optional<Credentials>();
}

// `docker-credential-NAME get`, stdin = server URL; stdout
// {"ServerURL","Username","Secret"}; Username `<token>` = identity token.
base::Result<std::optional<Credentials>> run_helper(const CredentialSources& sources,
                                                    const std::string& helper,
                                                    std::string_view registry) {
    if (helper.empty() || helper.find('/') != std::string::npos) {
        return base::invalid_argument("invalid credential helper name `{}`", helper);
    }
    std::string program = "docker-credential-" + helper;
    if (!sources.helper_dir.empty()) {
        program = sources.helper_dir + "/" + program;
    }
    base::SubprocessOptions options;
    options.argv = {program, "get"};
    options.stdin_data = credential_key(registry);
    options.timeout = std::chrono::seconds(30);
    auto result = base::run_subprocess(options);
    if (!result) {
        return base::unauthenticated("running credential helper `{}`: {}", program,
                                     result.error().message());
    }
    if (!result->status.success()) {
        // Helpers report a missing entry on stdout/stderr with a non-zero exit.
        std::string output = result->stdout_data + result->stderr_data;
        if (output.find("not found") != std::string::npos) {
            return std::optional<Credentials>();
        }
        return base::unauthenticated("credential helper `{}` failed ({})", program,
                                     result->status.to_string());
    }
    auto json = base::Json::parse(result->stdout_data);
    if (!json || !json->is_object()) {
        return base::unauthenticated("credential helper `{}` printed invalid JSON", program);
    }
    Credentials credentials;
    credentials.source = program;
    auto user = json->find("Username");
    auto secret = json->find("Secret");
    std::string username = user && user->is_string() ? user->as_string() : "";
    std::string password = secret && secret->is_string() ? secret->as_string() : "";
    if (username == "<token>") {
        credentials.identity_token = password;
    } else {
        credentials.username = username;
        credentials.password = password;
    }
    if (credentials.empty()) {
        return std::optional<Credentials>();
    }
    return std::optional<Credentials>(std::move(credentials));
}

}  // namespace

CredentialSources CredentialSources::from_environment(const std::string& config_dir) {
    CredentialSources sources;
    sources.locald_auth_file = config_dir + "/auth.json";
    sources.registry_auth_file = getenv_string("REGISTRY_AUTH_FILE");
    std::string runtime = getenv_string("XDG_RUNTIME_DIR");
    if (!runtime.empty()) {
        sources.xdg_runtime_auth_file = runtime + "/containers/auth.json";
    }
    std::string docker_config = getenv_string("DOCKER_CONFIG");
    std::string home = getenv_string("HOME");
    if (!docker_config.empty()) {
        sources.docker_config_file = docker_config + "/config.json";
    } else if (!home.empty()) {
        sources.docker_config_file = home + "/.docker/config.json";
    }
    return sources;
}

std::string credential_key(std::string_view registry) {
    if (is_docker_hub(registry)) {
        return "https://index.docker.io/v1/";
    }
    return std::string(registry);
}

base::Result<std::optional<Credentials>> lookup_credentials(const CredentialSources& sources,
                                                            std::string_view registry,
                                                            std::string_view repository) {
    auto keys = candidate_keys(registry, repository);
    for (const std::string* path :
         {&sources.locald_auth_file, &sources.registry_auth_file, &sources.xdg_runtime_auth_file}) {
        auto root = TRY(read_json_file(*path));
        if (!root) {
            continue;
        }
        auto found = TRY(lookup_in_auths(*root, keys, *path));
        if (found) {
            return found;
        }
    }
    auto docker = TRY(read_json_file(sources.docker_config_file));
    if (!docker) {
        return std::optional<Credentials>();
    }
    // credHelpers (per registry) wins over inline auths, which win over credsStore.
    std::string host = normalise_key(registry);
    if (const auto* helpers = docker->find("credHelpers"); helpers && helpers->is_object()) {
        for (const auto& [key, helper] : helpers->as_object()) {
            if (normalise_key(key) == host && helper.is_string()) {
                return run_helper(sources, helper.as_string(), registry);
            }
        }
    }
    auto found = TRY(lookup_in_auths(*docker, keys, sources.docker_config_file));
    if (found) {
        return found;
    }
    if (const auto* store = docker->find("credsStore");
        store && store->is_string() && !store->as_string().empty()) {
        return run_helper(sources, store->as_string(), registry);
    }
    return std::optional<Credentials>();
}

namespace {

base::Result<void> ensure_parent_private(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0) {
        return base::ok();
    }
    std::string dir = path.substr(0, slash);
    TRY(base::mkdir_p(dir, 0700));
    // The file holds secrets: its directory must not be readable by others.
    if (::chmod(dir.c_str(), 0700) != 0) {
        return base::errno_error("making `{}` private", dir);
    }
    return base::ok();
}

}  // namespace

base::Result<void> store_credentials(const std::string& path, std::string_view registry,
                                     const Credentials& credentials) {
    TRY(ensure_parent_private(path));
    auto existing = TRY(read_json_file(path));
    base::Json root = existing ? std::move(*existing) : base::Json::object();
    base::Json* auths = root.find("auths");
    if (!auths || !auths->is_object()) {
        root.set("auths", base::Json::object());
        auths = root.find("auths");
    }
    std::string key = credential_key(registry);
    // Replace any spelling of the same registry key.
    std::vector<std::string> stale;
    for (const auto& [existing_key, value] : auths->as_object()) {
        if (normalise_key(existing_key) == normalise_key(key)) {
            stale.push_back(existing_key);
        }
    }
    for (const auto& k : stale) {
        auths->erase(k);
    }
    base::Json entry = base::Json::object();
    if (!credentials.identity_token.empty()) {
        entry.set("identitytoken", credentials.identity_token);
    } else {
        entry.set("auth", basic_credentials(credentials.username, credentials.password));
    }
    auths->set(key, std::move(entry));
    return base::atomic_write_file(path, root.dump(true) + "\n", 0600)
        .context(fmt::format("writing `{}`", path));
}

base::Result<bool> erase_credentials(const std::string& path, std::string_view registry) {
    auto existing = TRY(read_json_file(path));
    if (!existing) {
        return false;
    }
    base::Json* auths = existing->find("auths");
    if (!auths || !auths->is_object()) {
        return false;
    }
    std::string wanted = normalise_key(credential_key(registry));
    std::vector<std::string> stale;
    for (const auto& [key, value] : auths->as_object()) {
        if (normalise_key(key) == wanted) {
            stale.push_back(key);
        }
    }
    for (const auto& k : stale) {
        auths->erase(k);
    }
    if (stale.empty()) {
        return false;
    }
    TRY(base::atomic_write_file(path, existing->dump(true) + "\n", 0600)
            .context(fmt::format("writing `{}`", path)));
    return true;
}

}  // namespace locald::oci
