// `locald run SERVICE -- CMD…`: a one-off command in a service's environment.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/ipc_client.h"

namespace locald::cli {

const char kRunHelp[] =
    "usage: locald run SERVICE [-- CMD [ARG…]]\n"
    "\n"
    "Runs CMD here, in this terminal, with the environment SERVICE gets (the\n"
    "captured shell environment, .env, [env], env_file, env, and the injected PORT,\n"
    "LOCALD_PROJECT, LOCALD_SERVICE, LOCALD_PORT_<NAME>) in the service's workdir —\n"
    "e.g. `locald run web -- npm run migrate`. NOTIFY_SOCKET is not passed (a\n"
    "one-off command must not signal readiness for the service). Without CMD, runs\n"
    "the service's own command once. The exit status is CMD's. The project must\n"
    "be known to the daemon (`locald up` once).\n";

int run_run(std::span<const std::string> args) {
    auto parsed = parse_args(args, {}, true);
    if (!parsed) {
        return report_usage("run", parsed.error());
    }
    std::vector<std::string> positional = parsed->positional();
    std::vector<std::string> command = parsed->rest();
    if (positional.empty()) {
        return report_usage("run", base::invalid_argument("expected SERVICE"));
    }
    std::string service = positional.front();
    if (positional.size() > 1) {
        if (positional[1] == "--") {
            command.assign(positional.begin() + 2, positional.end());
        } else {
            command.assign(positional.begin() + 1, positional.end());
        }
    }
    auto client = connect_daemon();
    if (!client) {
        return report_error(client.error());
    }
    auto answer = client->call("service_env",
                               base::Json::object({{"name", service}, {"cwd", current_dir()}}));
    if (!answer) {
        return report_error(answer.error());
    }
    if (command.empty()) {
        if (const auto* argv = answer->find("argv"); argv && argv->is_array()) {
            for (const auto& arg : argv->as_array()) {
                command.push_back(arg.as_string());
            }
        }
    }
    if (command.empty()) {
        return report_usage("run", base::invalid_argument("expected a command after `--`"));
    }
    ::clearenv();
    if (const auto* env = answer->find("env"); env && env->is_array()) {
        for (const auto& entry : env->as_array()) {
            const std::string& key = entry.find("key")->as_string();
            if (key == "NOTIFY_SOCKET") {
                continue;
            }
            ::setenv(key.c_str(), entry.find("value")->as_string().c_str(), 1);
        }
    }
    std::string workdir = answer->find("workdir")->as_string();
    if (!workdir.empty() && ::chdir(workdir.c_str()) != 0) {
        return report_error(base::errno_error("entering the workdir `{}`", workdir));
    }
    std::vector<char*> argv;
    for (auto& arg : command) {
        argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    // execvp searches the PATH we just set: the service's.
    ::execvp(argv[0], argv.data());
    int err = errno;
    std::fprintf(stderr, "locald: error: running `%s`: %s\n", command[0].c_str(),
                 std::strerror(err));
    return err == ENOENT ? 127 : 126;
}

}  // namespace locald::cli
