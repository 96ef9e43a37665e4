// `locald env SERVICE [--explain] [PATH]`: the environment a service runs with.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/container_run.h"
#include "cli/ipc_client.h"
#include "config/render.h"
#include "config/spec.h"
#include "daemon/image_service.h"
#include "oci/image.h"
#include "oci/reference.h"
#include "oci/store.h"

namespace locald::cli {

const char kEnvHelp[] =
    "usage: locald env SERVICE [--explain] [PATH]\n"
    "\n"
    "Prints KEY=VALUE for every variable SERVICE of the project in PATH (default:\n"
    "the current directory) would start with: this shell's environment, overridden\n"
    "by .env < .env.local < [env] < env_file… < the service's env, overridden by\n"
    "what locald injects (PORT, LOCALD_PROJECT, LOCALD_SERVICE, LOCALD_PORT_<NAME>).\n"
    "When the daemon runs the project, this is the environment the service really\n"
    "gets from it: the shell environment captured at `up`, the assigned PORT and\n"
    "LOCALD_PORT_<NAME>, and NOTIFY_SOCKET. Otherwise assigned ports are not known\n"
    "here (pinned ports are) and this shell's environment is the base.\n"
    "\n"
    "For an `image =` service it is the environment of the container's process:\n"
    "the image's Env, overridden by the service's (.env … env; not this shell's),\n"
    "overridden by what locald injects. The image must be in the local store (env\n"
    "never pulls; `locald pull IMAGE` or `locald up` does); when it is not, env\n"
    "fails, and with --explain still prints the other layers.\n"
    "\n"
    "options:\n"
    "  --explain   add where each value came from: FILE:LINE[:COL], `environment`,\n"
    "              `injected by locald` or `image config (IMAGE)`\n";

// When the daemon runs this project, the environment it really gives the
// service (captured shell env, assigned PORT and LOCALD_PORT_*, NOTIFY_SOCKET)
// is the truth; nothing when no daemon runs or it does not know the project.
// (Also `locald run` for image services: cli/container_run.h.)
std::optional<std::vector<config::EnvEntry>> daemon_env(const std::string& project,
                                                        const std::string& service) {
    auto client = connect_daemon(false);
    if (!client) {
        return std::nullopt;
    }
    auto answer =
        client->call("service_env", base::Json::object({{"name", project + ":" + service}}));
    if (!answer) {
        return std::nullopt;
    }
    const base::Json* list = answer->find("env");
    if (list == nullptr || !list->is_array()) {
        return std::nullopt;
    }
    std::vector<config::EnvEntry> entries;
    for (const auto& item : list->as_array()) {
        config::EnvEntry entry;
        entry.key = item.find("key")->as_string();
        entry.value = item.find("value")->as_string();
        const std::string& origin = item.find("origin")->as_string();
        for (auto candidate : {config::EnvOrigin::Environment, config::EnvOrigin::DotEnv,
                               config::EnvOrigin::ProjectEnv, config::EnvOrigin::EnvFile,
                               config::EnvOrigin::ServiceEnv, config::EnvOrigin::Injected}) {
            if (config::to_string(candidate) == origin) {
                entry.origin = candidate;
            }
        }
        // "file:line[:col]" (a path may itself contain ':', so parse from the right).
        std::string location = item.find("location")->as_string();
        std::vector<int> numbers;
        while (numbers.size() < 2) {
            size_t colon = location.rfind(':');
            if (colon == std::string::npos || colon + 1 == location.size() ||
                location.find_first_not_of("0123456789", colon + 1) != std::string::npos) {
                break;
            }
            numbers.insert(numbers.begin(), std::atoi(location.c_str() + colon + 1));
            location.resize(colon);
        }
        entry.location.file = location;
        if (!numbers.empty()) {
            entry.location.line = numbers[0];
            entry.location.column = numbers.size() > 1 ? numbers[1] : 0;
        }
        entries.push_back(std::move(entry));
    }
    return entries;
}

namespace {

// The image's config Env, from the local store only: `env` never pulls.
base::Result<std::vector<std::string>> stored_image_env(const std::string& reference) {
    auto ref = TRY(oci::Reference::parse(reference));
    auto store = TRY(oci::ContentStore::open_default().context("opening the local image store"));
    auto image = oci::resolve_image(store, ref);
    if (!image) {
        if (image.error().kind() == base::ErrorKind::NotFound) {
            return base::not_found(
                "the image `{}` is not in the local store, so its environment is unknown "
                "(`locald env` never pulls; `locald pull {}` or `locald up` fetches it)",
                reference, reference);
        }
        return image.release_error().context(fmt::format("reading the image `{}`", reference));
    }
    return image->config.config.env;
}

// An image service: what the container's process gets (daemon::container_env,
// the rule container_spec applies).
int print_image_env(const config::ServiceSpec& service, const std::vector<config::EnvEntry>& env,
                    bool explain) {
    std::string notify_socket;
    for (const auto& entry : env) {
        if (entry.key == "NOTIFY_SOCKET" && entry.origin == config::EnvOrigin::Injected) {
            notify_socket = entry.value;
        }
    }
    auto image_env =
        stored_image_env(service.image)
            .context(fmt::format("{}: service `{}`", service.location.to_string(), service.name));
    if (!image_env && !explain) {
        return report_error(image_env.error());
    }
    auto vars = daemon::container_env(
        service, image_env ? image_env.value() : std::vector<std::string>{}, env, notify_socket);
    std::string out;
    for (const auto& var : vars) {
        out += fmt::format("{}={}", var.key, var.value);
        if (explain) {
            out +=
                fmt::format("  # {}", var.source ? config::describe_origin(*var.source)
                                                 : fmt::format("image config ({})", service.image));
        }
        out += '\n';
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    if (!image_env) {
        // --explain: the other layers are shown; the status still says the
        // environment is incomplete.
        return report_error(image_env.error());
    }
    return kExitOk;
}

}  // namespace

int run_env(std::span<const std::string> args) {
    static const OptionSpec kOptions[] = {{"explain"}};
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("env", parsed.error());
    }
    std::vector<std::string> positional = parsed->positional();
    for (const auto& arg : parsed->rest()) {
        positional.push_back(arg);
    }
    if (positional.empty()) {
        return report_usage("env", base::invalid_argument("missing SERVICE"));
    }
    if (positional.size() > 2) {
        return report_usage("env", base::invalid_argument("expected SERVICE [PATH], got {} "
                                                          "arguments",
                                                          positional.size()));
    }
    std::string dir = positional.size() == 2 ? positional[1] : ".";
    config::Environment environment = config::current_environment();
    auto project = config::load_project(dir, environment);
    if (!project) {
        return report_error(project.error());
    }
    const config::ServiceSpec* service = project->find_service(positional[0]);
    if (service == nullptr) {
        std::string names;
        for (const auto& candidate : project->services) {
            names += fmt::format("{}`{}`", names.empty() ? "" : ", ", candidate.name);
        }
        return report_error(base::not_found("no service `{}` in project `{}` (services: {})",
                                            positional[0], project->name,
                                            names.empty() ? "none" : names));
    }
    auto injected = config::injected_env(project.value(), *service, {}, "");
    auto env = config::service_env(project.value(), *service, environment, injected);
    std::vector<std::string> unknown;
    if (auto running = daemon_env(project->name, service->name)) {
        env = std::move(*running);
    } else {
        // The ports `up` assigns are unknown here: a PORT from this shell or
        // `.env` would be overridden at `up`, so showing it would be untrue.
        unknown = config::unassigned_port_keys(project.value(), *service, {});
        std::erase_if(env, [&](const config::EnvEntry& entry) {
            return std::find(unknown.begin(), unknown.end(), entry.key) != unknown.end();
        });
    }
    bool explain = parsed->has("explain");
    if (!unknown.empty()) {
        // On stderr: stdout stays `KEY=VALUE` lines a script may source.
        std::string keys;
        for (const auto& key : unknown) {
            keys += fmt::format("{}{}", keys.empty() ? "" : ", ", key);
        }
        std::fprintf(stderr,
                     "locald: note: %s: assigned by the daemon at `locald up`, so not shown "
                     "(run `locald up` first to see them)\n",
                     keys.c_str());
    }
    if (service->kind == config::ServiceKind::Image) {
        return print_image_env(*service, env, explain);
    }
    std::string out = config::render_env(env, explain);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return kExitOk;
}

}  // namespace locald::cli
