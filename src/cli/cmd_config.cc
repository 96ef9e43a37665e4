// `locald config [PATH] [--json]`: resolve the project in PATH and print it.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "config/render.h"
#include "config/spec.h"

namespace locald::cli {

const char kConfigHelp[] =
    "usage: locald config [PATH] [--json]\n"
    "\n"
    "Reads the project in PATH (default: the current directory) — locald.toml, a\n"
    "Procfile, .env, .env.local and every env_file — validates it and prints the\n"
    "resolved services: defaults filled in, paths absolute, env layered.\n"
    "\n"
    "options:\n"
    "  --json   print the stable JSON shape documented in docs/manual/config.md\n"
    "\n"
    "Bad input exits 3 with `locald: error: FILE:LINE[:COL]: …`.\n";

int run_config(std::span<const std::string> args) {
    static const OptionSpec kOptions[] = {{"json"}};
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("config", parsed.error());
    }
    std::vector<std::string> positional = parsed->positional();
    for (const auto& arg : parsed->rest()) {
        positional.push_back(arg);
    }
    if (positional.size() > 1) {
        return report_usage("config", base::invalid_argument("expected at most one PATH, got {}",
                                                             positional.size()));
    }
    std::string dir = positional.empty() ? "." : positional[0];
    auto project = config::load_project(dir);
    if (!project) {
        return report_error(project.error());
    }
    std::string out = parsed->has("json") ? config::to_json(project.value()).dump(true) + "\n"
                                          : config::render_text(project.value());
    std::fwrite(out.data(), 1, out.size(), stdout);
    return kExitOk;
}

}  // namespace locald::cli
