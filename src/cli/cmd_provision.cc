// cli/cmd_provision.cc — `locald provision [SERVICE…]` (build the project's
// `build =` services with locald's CNB lifecycle and dump them for the host,
// cnb/provision.h) and `locald __provision`, the internal mode the daemon
// runs for `build = {…, mode = "host"}` services: the same work in a fresh
// single-threaded process (it forks into user namespaces and runs the
// launcher), speaking NDJSON on stdout, one flushed object per line:
//   {"event":"progress","phase":"detect","message":"…"}
//   {"event":"warning","message":"…"}
//   {"event":"result","dump_dir":"…","reused":true,"group":[…],"builder_digest":"…"}
// With --container (build mode "container") the result also holds
//   "container":{"rootfs":"…","user":"UID:GID","layers":"…","app":"…",
//                "argv":[…],"cwd":"…","env":["K=V",…]}
// — the process as the CNB launcher would exec it inside the builder's
// rootfs with the dump at /layers and /workspace (cnb::container_launch).
//   {"event":"error","kind":"…","message":"…"}   last line on failure
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <string_view>

#include <fmt/format.h>

#include "base/error.h"
#include "base/json.h"
#include "base/paths.h"
#include "base/sys.h"
#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cnb/env_files.h"
#include "cnb/provision.h"
#include "config/spec.h"

extern char** environ;

namespace locald::cli {

const char kProvisionHelp[] =
    "usage: locald provision [SERVICE…] [--offline] [--force]\n"
    "\n"
    "Builds the `build =` services of the project in the current directory (all of\n"
    "them, or the ones named) with locald's own Cloud Native Buildpacks lifecycle:\n"
    "the builder image is pulled when it is not in the local store, the app dir is\n"
    "copied to a workspace (without .git and .locald), detect and build run as the\n"
    "builder's user in the builder's root filesystem (rootless), and the launch\n"
    "layers and the built app are written to <data>/provisioned/<project>/<service>\n"
    "(the Dump Layer) so `up` runs the process: in a rootless container of the\n"
    "builder's rootfs with that copy at /layers and /workspace (mode \"container\",\n"
    "the default), or on the host (mode \"host\"). A service whose\n"
    "builder, buildpacks, build env and app files are unchanged is reused.\n"
    "Prints each phase, the detected group and the process that will run.\n"
    "\n"
    "  --offline  never pull: the builder must be in the local store\n"
    "  --force    build again even when the dump is current\n";

const char kProvisionInternalHelp[] =
    "usage: locald __provision --project NAME --service NAME --app-dir DIR --builder REF\n"
    "                          [--buildpack ID[@VERSION]]… [--env K=V]… [--offline]\n"
    "                          [--container [--process TYPE] [-- COMMAND…]]\n"
    "\n"
    "Internal: provisions one build service (see `locald help provision`), printing\n"
    "NDJSON progress and a final result on stdout. Used by the daemon. With\n"
    "--container the result also holds the process to run in the builder's rootfs\n"
    "(argv, cwd, env with /layers and /workspace paths, user).\n";

const char kRunProvisionedHelp[] =
    "usage: locald __run-provisioned --project NAME --service NAME --app-dir DIR\n"
    "                                --builder REF [--buildpack ID[@VERSION]]… [--env K=V]…\n"
    "                                [--process TYPE] [--keep KEY]… [-- COMMAND…]\n"
    "\n"
    "Internal: what the daemon supervises for a `build = {…, mode = \"host\"}` service.\n"
    "Provisions the service when its dump is missing or stale (progress goes to the\n"
    "service log), then execs the process on the host with the launch environment\n"
    "of the dump over its own environment; each --keep KEY keeps this process's\n"
    "value of KEY (locald's service env wins over buildpack defaults).\n";

namespace {

const OptionSpec kOptions[] = {{"offline"}, {"force"}};

void emit(const base::Json& event) {
    std::string line = event.dump();
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
}

std::string join_argv(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& arg : argv) {
        if (!out.empty()) {
            out += ' ';
        }
        bool plain = !arg.empty() && arg.find_first_of(" \t\n'\"\\$`") == std::string::npos;
        out += plain ? arg : "'" + arg + "'";
    }
    return out;
}

std::vector<std::string> host_environment() {
    std::vector<std::string> env;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        env.emplace_back(*e);
    }
    return env;
}

// The provision request both internal modes read from their arguments
// (--project --service --app-dir --builder --buildpack… --env K=V…
// --env-file F --offline).
base::Result<cnb::ProvisionRequest> request_from_args(const ParsedArgs& parsed,
                                                      const std::string& data_dir) {
    cnb::ProvisionRequest request;
    request.project = parsed.value("project").value_or("");
    request.service = parsed.value("service").value_or("");
    request.app_dir = parsed.value("app-dir").value_or("");
    request.builder = parsed.value("builder").value_or("");
    request.data_dir = data_dir;
    request.buildpacks = parsed.values("buildpack");
    for (const auto& kv : parsed.values("env")) {
        size_t eq = kv.find('=');
        if (eq == std::string::npos) {
            return base::invalid_argument("--env `{}`: expected K=V", kv);
        }
        request.env.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    // The daemon passes build.env in a 0600 file, not on the command line
    // (which every local user can read in `ps`): a JSON object of strings.
    if (auto file = parsed.value("env-file")) {
        auto text = TRY(base::read_file(*file, 1 << 20));
        auto json = TRY(base::Json::parse(text).context(fmt::format("reading `{}`", *file)));
        if (!json.is_object()) {
            return base::invalid_argument("`{}`: expected a JSON object of build env values",
                                          *file);
        }
        for (const auto& [key, value] : json.as_object()) {
            if (!value.is_string()) {
                return base::invalid_argument("`{}`: `{}` must be a string", *file, key);
            }
            request.env.emplace_back(key, value.as_string());
        }
    }
    request.offline = parsed.has("offline");
    return request;
}

}  // namespace

int run_provision(std::span<const std::string> args) {
    auto parsed = parse_args(args, kOptions);
    if (!parsed) {
        return report_usage("provision", parsed.error());
    }
    auto paths = base::Paths::from_env();
    if (!paths) {
        return report_error(paths.error());
    }
    auto project = config::load_project(".");
    if (!project) {
        return report_error(project.error());
    }
    std::vector<const config::ServiceSpec*> services;
    std::set<std::string> named(parsed->positional().begin(), parsed->positional().end());
    for (const auto& name : named) {
        const auto* service = project->find_service(name);
        if (service == nullptr) {
            return report_error(base::not_found("no service `{}` in {}", name, project->dir));
        }
        if (service->kind != config::ServiceKind::Build || !service->build) {
            return report_error(base::invalid_argument(
                "service {} has no `build =`: only build services are provisioned", name));
        }
    }
    for (const auto& service : project->services) {
        if (service.kind == config::ServiceKind::Build && service.build &&
            (named.empty() || named.count(service.name) != 0)) {
            services.push_back(&service);
        }
    }
    if (services.empty()) {
        std::printf("no build services in %s\n", project->dir.c_str());
        return kExitOk;
    }
    for (const auto* service : services) {
        cnb::ProvisionRequest request;
        request.project = project->name;
        request.service = service->name;
        request.app_dir = project->dir;
        request.data_dir = paths->data;
        request.builder = service->build->builder;
        request.buildpacks = service->build->buildpacks;
        request.env = service->build->env;
        request.offline = parsed->has("offline");
        request.force = parsed->has("force");
        const std::string name = service->name;
        request.on_progress = [&](std::string_view phase, std::string_view message) {
            std::printf("%s: %.*s: %.*s\n", name.c_str(), static_cast<int>(phase.size()),
                        phase.data(), static_cast<int>(message.size()), message.data());
            std::fflush(stdout);
        };
        request.warn = [&](const std::string& message) {
            std::fprintf(stderr, "locald: warning: %s: %s\n", name.c_str(), message.c_str());
        };
        auto result = cnb::provision(request);
        if (!result) {
            return report_error(result.error());
        }
        std::string group;
        for (const auto& member : result->group) {
            group += (group.empty() ? "" : ", ") + member;
        }
        std::printf("%s: %s (group: %s) in %s\n", name.c_str(),
                    result->reused ? "up to date" : "provisioned", group.c_str(),
                    result->dump_dir.c_str());
        std::vector<std::string> user_args = service->command.argv;
        if (service->command.form == config::CommandLine::Form::Shell) {
            user_args = {"/bin/sh", "-c", service->command.shell};
        }
        // Mode "container" (the default) runs it in the builder's rootfs with
        // the dump at /layers and /workspace; mode "host" on the host.
        const bool in_container = !service->runs_on_host();
        auto launch = in_container ? cnb::container_launch(*result, service->process, user_args)
                                   : cnb::dump_launch(*result, service->process, user_args,
                                                      host_environment());
        if (!launch) {
            return report_error(
                base::Error(launch.error()).context(fmt::format("service {}: the process", name)));
        }
        std::printf("%s: process %s: %s (cwd %s%s)\n", name.c_str(),
                    launch->process_type.empty() ? "(command)" : launch->process_type.c_str(),
                    join_argv(launch->argv).c_str(), launch->working_dir.c_str(),
                    in_container ? ", in a container of the builder" : "");
        if (!launch->executable.empty() && launch->executable != launch->argv[0]) {
            std::printf("%s: executable %s\n", name.c_str(), launch->executable.c_str());
        }
    }
    return kExitOk;
}

int run_provision_internal(std::span<const std::string> args) {
    static const OptionSpec kInternalOptions[] = {
        {"project", 0, true},
        {"service", 0, true},
        {"app-dir", 0, true},
        {"builder", 0, true},
        {"buildpack", 0, true, true},
        {"env", 0, true, true},
        {"env-file", 0, true},
        {"offline"},
        {"force"},
        {"container"},
        {"process", 0, true},
    };
    auto parsed = parse_args(args, kInternalOptions);
    if (!parsed) {
        return report_usage("__provision", parsed.error());
    }
    auto fail = [](const base::Error& error) {
        emit(base::Json::object({{"event", "error"},
                                 {"kind", std::string(base::to_string(error.kind()))},
                                 {"message", error.to_string()}}));
        return kExitFailure;
    };
    auto paths = base::Paths::from_env();
    if (!paths) {
        return fail(paths.error());
    }
    auto made = request_from_args(*parsed, paths->data);
    if (!made) {
        return fail(made.error());
    }
    cnb::ProvisionRequest request = made.release_value();
    request.force = parsed->has("force");
    if (request.app_dir.empty() || request.builder.empty()) {
        return fail(base::invalid_argument("__provision: --app-dir and --builder are required"));
    }
    request.on_progress = [](std::string_view phase, std::string_view message) {
        emit(base::Json::object({{"event", "progress"}, {"phase", phase}, {"message", message}}));
    };
    request.warn = [](const std::string& message) {
        emit(base::Json::object({{"event", "warning"}, {"message", message}}));
    };
    auto result = cnb::provision(request);
    if (!result) {
        return fail(result.error());
    }
    base::Json group = base::Json::array();
    for (const auto& member : result->group) {
        group.push_back(member);
    }
    base::Json event = base::Json::object({{"event", "result"},
                                           {"dump_dir", result->dump_dir},
                                           {"reused", result->reused},
                                           {"builder_digest", result->builder_digest},
                                           {"group", std::move(group)}});
    if (parsed->has("container")) {
        std::vector<std::string> user_args(parsed->rest().begin(), parsed->rest().end());
        auto launch =
            cnb::container_launch(*result, parsed->value("process").value_or(""), user_args);
        if (!launch) {
            return fail(base::Error(launch.error())
                            .context(fmt::format("service {}: the process", request.service)));
        }
        if (!launch->exec_d.empty()) {
            return fail(base::unsupported(
                "service {}: the process needs exec.d programs ({}): build mode \"container\" "
                "does not run them yet; use mode = \"host\"",
                request.service, launch->exec_d.front()));
        }
        // The launcher searches args[0] in the env's PATH; a file the plan
        // chose itself (a shell, a command relative to the app) goes first.
        if (!launch->executable.empty()) {
            launch->argv[0] = launch->executable;
        }
        base::Json argv = base::Json::array();
        for (const auto& arg : launch->argv) {
            argv.push_back(arg);
        }
        base::Json env = base::Json::array();
        for (const auto& entry : cnb::env_to_list(launch->env)) {
            env.push_back(entry);
        }
        event.set("container",
                  base::Json::object({{"rootfs", result->builder_rootfs},
                                      {"user", fmt::format("{}:{}", result->uid, result->gid)},
                                      {"layers", result->layers_dir},
                                      {"app", result->app_dir},
                                      {"argv", std::move(argv)},
                                      {"cwd", launch->working_dir},
                                      {"env", std::move(env)}}));
    }
    emit(event);
    return kExitOk;
}

}  // namespace locald::cli

namespace locald::cli {

int run_run_provisioned(std::span<const std::string> args) {
    static const OptionSpec kRunOptions[] = {
        {"project", 0, true},  {"service", 0, true},         {"app-dir", 0, true},
        {"builder", 0, true},  {"buildpack", 0, true, true}, {"env", 0, true, true},
        {"env-file", 0, true}, {"process", 0, true},         {"keep", 0, true, true},
        {"offline"},
    };
    auto parsed = parse_args(args, kRunOptions);
    if (!parsed) {
        return report_usage("__run-provisioned", parsed.error());
    }
    auto paths = base::Paths::from_env();
    if (!paths) {
        return report_error(paths.error());
    }
    auto made = request_from_args(*parsed, paths->data);
    if (!made) {
        return report_usage("__run-provisioned", made.error());
    }
    cnb::ProvisionRequest request = made.release_value();
    request.on_progress = [](std::string_view phase, std::string_view message) {
        std::printf("locald: provision: %.*s: %.*s\n", static_cast<int>(phase.size()), phase.data(),
                    static_cast<int>(message.size()), message.data());
        std::fflush(stdout);
    };
    request.warn = [](const std::string& message) {
        std::fprintf(stderr, "locald: warning: %s\n", message.c_str());
    };
    auto result = cnb::provision(request);
    if (!result) {
        return report_error(result.error());
    }
    std::vector<std::string> own_env = host_environment();
    std::vector<std::string> user_args(parsed->rest().begin(), parsed->rest().end());
    auto launch =
        cnb::dump_launch(*result, parsed->value("process").value_or(""), user_args, own_env);
    if (!launch) {
        return report_error(base::Error(launch.error())
                                .context(fmt::format("service {}: the process", request.service)));
    }
    // locald's own settings for the service (.env, [env], PORT …) win.
    for (const auto& key : parsed->values("keep")) {
        if (const char* value = ::getenv(key.c_str())) {
            launch->env[key] = value;
        }
    }
    if (auto ran = cnb::run_exec_d_on_host(*launch, result->app_dir); !ran) {
        return report_error(ran.error());
    }
    if (::chdir(launch->working_dir.c_str()) != 0) {
        return report_error(base::errno_error("changing to `{}`", launch->working_dir));
    }
    std::vector<std::string> env = cnb::env_to_list(launch->env);
    std::vector<char*> envp;
    for (auto& entry : env) {
        envp.push_back(entry.data());
    }
    envp.push_back(nullptr);
    std::vector<char*> argv;
    for (auto& arg : launch->argv) {
        argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    const std::string& file = launch->executable.empty() ? launch->argv[0] : launch->executable;
    std::fflush(stdout);
    ::execve(file.c_str(), argv.data(), envp.data());
    return report_error(base::errno_error("executing `{}`", file));
}

}  // namespace locald::cli
