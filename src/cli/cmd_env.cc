// `locald env SERVICE [--explain] [PATH]`: the environment a service runs with.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "config/render.h"
#include "config/spec.h"

namespace locald::cli {

const char kEnvHelp[] =
    "usage: locald env SERVICE [--explain] [PATH]\n"
    "\n"
    "Prints KEY=VALUE for every variable SERVICE of the project in PATH (default:\n"
    "the current directory) would start with: this shell's environment, overridden\n"
    "by .env < .env.local < [env] < env_file… < the service's env, overridden by\n"
    "what locald injects (PORT, LOCALD_PROJECT, LOCALD_SERVICE, LOCALD_PORT_<NAME>).\n"
    "Ports that locald assigns at `up` are not known here; pinned ports are.\n"
    "\n"
    "options:\n"
    "  --explain   add where each value came from: FILE:LINE[:COL], `environment`\n"
    "              or `injected by locald`\n";

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
    std::string out = config::render_env(env, parsed->has("explain"));
    std::fwrite(out.data(), 1, out.size(), stdout);
    return kExitOk;
}

}  // namespace locald::cli
