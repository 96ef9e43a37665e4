// `locald run SERVICE -- CMD…`: a one-off command in a service's environment.
// Host services: CMD runs here, in the service's env and workdir. `image =`
// services: CMD runs in a fresh one-off container of the service's image with
// the service's spec (daemon::container_spec), through `container run`'s path
// (cli/container_run.h), as `docker compose run --rm` does.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/paths.h"
#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/container_run.h"
#include "cli/ipc_client.h"
#include "config/spec.h"
#include "daemon/image_service.h"

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
    "be known to the daemon (`locald up` once).\n"
    "\n"
    "For an `image =` service of the project in the current directory, CMD runs in\n"
    "a new container of the service's image (pulled when missing, progress on\n"
    "stderr) with the service's env (image < service < injected), workdir, user,\n"
    "volumes and network, like `docker compose run --rm`: CMD replaces the\n"
    "service's command (the entrypoint stays), stdin stays attached, a terminal is\n"
    "given when stdin and stdout are terminals, the exit status is the\n"
    "container's (128+N when killed by signal N) and its writable layer is removed\n"
    "afterwards. PORT is the daemon's when it runs the project. From another\n"
    "directory, PROJECT:SERVICE of an image service the daemon runs works the\n"
    "same: its spec is read from that project's config.\n";

namespace {

// The image service `name` (SERVICE or PROJECT:SERVICE) of the project in
// `dir`; nullopt when there is none (not a project dir, another project, a
// host service): the daemon then resolves the name.
std::optional<std::pair<config::ProjectSpec, std::string>> image_service_in(
    const std::string& dir, const std::string& name, const config::Environment& environment,
    std::optional<base::Error>* load_error) {
    auto project = config::load_project(dir, environment);
    if (!project) {
        *load_error = project.release_error();
        return std::nullopt;
    }
    std::string service = name;
    if (size_t colon = name.find(':'); colon != std::string::npos) {
        if (name.substr(0, colon) != project->name) {
            return std::nullopt;
        }
        service = name.substr(colon + 1);
    }
    const config::ServiceSpec* spec = project->find_service(service);
    if (spec == nullptr || spec->kind != config::ServiceKind::Image) {
        return std::nullopt;
    }
    return std::make_pair(std::move(*project), service);
}

int run_in_image(const config::ProjectSpec& project, const std::string& name,
                 const config::Environment& environment, std::vector<std::string> command) {
    config::ServiceSpec service = *project.find_service(name);
    auto paths = base::Paths::from_env();
    if (!paths) {
        return report_error(paths.error());
    }
    // The daemon's env when it runs the project (the assigned PORT and
    // LOCALD_PORT_*), else the config's (pinned ports only).
    std::vector<config::EnvEntry> env;
    if (auto running = daemon_env(project.name, service.name)) {
        env = std::move(*running);
    } else {
        auto injected = config::injected_env(project, service, {}, "");
        env = config::service_env(project, service, environment, injected);
    }
    if (!command.empty()) {
        // Compose: CMD replaces the service's command; the entrypoint stays.
        service.command.form = config::CommandLine::Form::Exec;
        service.command.argv = std::move(command);
    }
    auto prepared = prepare_run_rootfs(service.image);
    if (!prepared) {
        return report_error(prepared.error().context(
            fmt::format("{}: service `{}`", service.location.to_string(), service.name)));
    }
    daemon::ContainerInputs inputs;
    inputs.project = &project;
    inputs.service = &service;
    inputs.prepared = image::describe(**prepared);
    inputs.env = std::move(env);
    // No NOTIFY_SOCKET: a one-off must not signal readiness for the service;
    // state "" gives the launcher a private scratch dir of its own.
    inputs.data_dir = paths->data;
    inputs.run_dir = paths->run;
    auto spec = daemon::container_spec(inputs);
    if (!spec) {
        return report_error(spec.error());
    }
    spec->tty = ::isatty(STDIN_FILENO) == 1 && ::isatty(STDOUT_FILENO) == 1;
    // The writable layer goes when `prepared` is dropped, after the run.
    return run_container_foreground(*spec, /*interactive=*/true);
}

}  // namespace

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
    config::Environment environment = config::current_environment();
    std::optional<base::Error> load_error;
    if (auto image_service = image_service_in(".", service, environment, &load_error)) {
        return run_in_image(image_service->first, image_service->second, environment,
                            std::move(command));
    }
    auto client = connect_daemon();
    if (!client) {
        return report_error(client.error());
    }
    auto answer = client->call("service_env",
                               base::Json::object({{"name", service}, {"cwd", current_dir()}}));
    if (!answer) {
        // The usual first try: `run` in a project dir before `up`. Say so
        // rather than only that no loaded project has the service.
        auto here = config::load_project(".", environment);
        if (answer.error().kind() == base::ErrorKind::NotFound && here &&
            here->find_service(service) != nullptr) {
            return report_error(base::not_found(
                "project `{}` is not up, so the environment of `{}` (its assigned ports, the "
                "shell environment captured at `up`) is not known yet: run `locald up` first "
                "(`locald env {}` shows what it can without it)",
                here->name, service, service));
        }
        return report_error(answer.error());
    }
    // An image service the daemon resolved from elsewhere (PROJECT:SERVICE of
    // a project in another directory, or this directory's config no longer
    // loads): its container spec comes from that project's config. Never run
    // it on the host.
    const base::Json* kind = answer->find("kind");
    if (kind != nullptr && kind->is_string() && kind->as_string() == "image") {
        const base::Json* resolved = answer->find("service");
        const base::Json* dir = answer->find("project_dir");
        std::string name =
            resolved != nullptr && resolved->is_string() ? resolved->as_string() : service;
        std::optional<base::Error> error;
        auto found = image_service_in(dir != nullptr && dir->is_string() ? dir->as_string() : "",
                                      name, environment, &error);
        if (!found) {
            return report_error(error ? *error
                                      : base::failed_precondition(
                                            "`{}` is an image service, but its project's config "
                                            "no longer declares it as one: run `locald up` there",
                                            name));
        }
        return run_in_image(found->first, found->second, environment, std::move(command));
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
