#include "cnb/launch.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "base/confined.h"
#include "base/sys.h"
#include "cnb/internal/toml_util.h"
#include "cnb/internal/tree.h"

namespace locald::cnb {

namespace {

using internal::EntryType;
using internal::join;
using internal::Tree;

using Prefixes = std::vector<std::pair<std::string, std::string>>;

std::string shell_quote(std::string_view text) {
    std::string out = "'";
    for (char c : text) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    return out + "'";
}

bool under(std::string_view path, std::string_view prefix) {
    return path == prefix ||
           (path.size() > prefix.size() && path.starts_with(prefix) && path[prefix.size()] == '/');
}

std::string rewrite_one(std::string_view path, const Prefixes& prefixes) {
    for (const auto& [from, to] : prefixes) {
        if (under(path, from)) {
            return to + std::string(path.substr(from.size()));
        }
    }
    return std::string(path);
}

// The launcher's own variables go; PATH loses the launcher's directories.
EnvMap launch_base_env(const std::vector<std::string>& list) {
    EnvMap env = env_from_list(list);
    for (const char* name : {"CNB_LAYERS_DIR", "CNB_APP_DIR", "CNB_PROCESS_TYPE",
                             "CNB_PLATFORM_API", "CNB_DEPRECATION_MODE"}) {
        env.erase(name);
    }
    auto path = env.find("PATH");
    if (path != env.end()) {
        std::vector<std::string_view> kept;
        std::string_view value = path->second;
        while (true) {
            size_t end = value.find(':');
            std::string_view part = value.substr(0, end);
            if (part != "/cnb/process" && part != "/cnb/lifecycle") {
                kept.push_back(part);
            }
            if (end == std::string_view::npos) {
                break;
            }
            value.remove_prefix(end + 1);
        }
        path->second = fmt::format("{}", fmt::join(kept, ":"));
    }
    return env;
}

struct Layer {
    std::string rel;  // <esc>/<layer>, inside the layers dir
};

// The layer dirs of one buildpack dir, sorted.
base::Result<std::vector<Layer>> layer_dirs(const Tree& tree, const std::string& esc,
                                            LayerSelection selection) {
    std::vector<Layer> out;
    auto entries = TRY(internal::list_dir(tree, esc));
    if (!entries) {
        return out;
    }
    for (const auto& entry : *entries) {
        if (entry.type != EntryType::Directory || entry.name.ends_with(".ignore")) {
            continue;
        }
        std::string rel = join(esc, entry.name);
        if (selection == LayerSelection::LaunchLayersOnly) {
            auto text = TRY(internal::read_optional_file(tree, rel + ".toml"));
            if (!text) {
                continue;
            }
            LayerFile layer = TRY(parse_layer_toml(*text, tree.display(rel + ".toml")));
            if (!layer.types.launch) {
                continue;
            }
        }
        out.push_back({std::move(rel)});
    }
    return out;
}

struct ListedFile {
    std::string path;  // as the process sees it (argv[0] of an exec.d program)
    std::string file;  // what to exec or source: `path`, or a link's target
};

// Regular files of `dir` (sorted), as paths the process sees. A symlink
// whose absolute target is under the container's layers path — libpak
// (Paketo) links `exec.d/<name>` to `/layers/<bp>/helper/helper` — is
// resolved there, inside the layers dir (confined resolution alone would
// look for `<layers>/layers/…`); `file` is that target as the process
// sees it, so the host can run it while argv[0] stays the link.
base::Result<std::vector<ListedFile>> files_in(const Tree& tree, const std::string& dir,
                                               const std::string& value_prefix,
                                               const std::string& layers_path) {
    std::vector<ListedFile> out;
    auto entries = TRY(internal::list_dir(tree, dir));
    if (!entries) {
        return out;
    }
    base::UniqueFd dir_fd;
    for (const auto& entry : *entries) {
        std::string path = join(join(value_prefix, dir), entry.name);
        if (entry.type == EntryType::File) {
            out.push_back({path, path});
            continue;
        }
        if (entry.type != EntryType::Missing || layers_path.empty()) {
            continue;
        }
        if (!dir_fd) {
            dir_fd = TRY(base::open_in_root(tree.fd, dir, O_PATH | O_DIRECTORY));
        }
        char target[4096];
        ssize_t n = ::readlinkat(dir_fd.get(), entry.name.c_str(), target, sizeof target);
        if (n <= 0 || static_cast<size_t>(n) >= sizeof target) {
            continue;  // not a symlink: dangling or vanished
        }
        std::string_view link(target, static_cast<size_t>(n));
        if (!under(link, layers_path) || link.size() == layers_path.size()) {
            continue;
        }
        std::string rel(link.substr(layers_path.size() + 1));
        if (rel == ".." || rel.starts_with("../") || rel.find("/../") != std::string::npos ||
            rel.ends_with("/..")) {
            continue;  // `/layers/../x` would name a path outside the dump on the host
        }
        if (TRY(internal::entry_type(tree, rel)) == EntryType::File) {
            out.push_back({path, join(value_prefix, rel)});
        }
    }
    return out;
}

// exec.LookPath on the host with the computed PATH.
base::Result<std::string> look_path(const std::string& name, const EnvMap& env,
                                    const std::string& app_dir) {
    if (name.find('/') != std::string::npos) {
        return name.front() == '/' ? name : join(app_dir, name);
    }
    auto path = env.find("PATH");
    std::string value = path == env.end() ? "" : path->second;
    size_t start = 0;
    while (start <= value.size()) {
        size_t end = value.find(':', start);
        if (end == std::string::npos) {
            end = value.size();
        }
        std::string dir = value.substr(start, end - start);
        std::string candidate = join(dir.empty() ? "." : dir, name);
        if (dir.empty() || dir.front() != '/') {
            candidate = join(app_dir, candidate);
        }
        struct stat st;
        if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
            ::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
        start = end + 1;
    }
    return base::not_found("`{}`: not found in PATH ({})", name, value);
}

}  // namespace

std::string rewrite_path_list(std::string_view value, const Prefixes& prefixes) {
    std::string out;
    size_t start = 0;
    while (true) {
        size_t end = value.find(':', start);
        std::string_view part = value.substr(
            start, end == std::string_view::npos ? std::string_view::npos : end - start);
        out += rewrite_one(part, prefixes);
        if (end == std::string_view::npos) {
            break;
        }
        out += ':';
        start = end + 1;
    }
    return out;
}

base::Result<void> apply_exec_d_output(EnvMap& env, std::string_view output,
                                       std::string_view program) {
    std::string file = fmt::format("output of exec.d program `{}`", program);
    toml::table root = TRY(internal::parse_toml(output, file));
    for (const auto& [key, node] : root) {
        const auto* value = node.as_string();
        if (value == nullptr) {
            return base::invalid_argument("{}: `{}`: expected a string value",
                                          internal::at(file, node), key.str());
        }
        if (key.str().empty() || key.str().find('=') != std::string_view::npos ||
            key.str().find('\0') != std::string_view::npos ||
            value->get().find('\0') != std::string::npos) {
            return base::invalid_argument("{}: `{}` cannot be an environment variable",
                                          internal::at(file, node), key.str());
        }
        env[std::string(key.str())] = value->get();
    }
    return base::ok();
}

base::Result<void> run_exec_d_on_host(LaunchPlan& plan, const std::string& app_dir) {
    constexpr size_t kMaxOutput = 1 << 20;
    for (size_t index = 0; index < plan.exec_d.size(); ++index) {
        const std::string& program = plan.exec_d[index];
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            return base::errno_error("pipe for exec.d program `{}`", program);
        }
        base::UniqueFd read_end(fds[0]);
        base::UniqueFd write_end(fds[1]);
        // Everything the child needs is built before fork.
        std::vector<std::string> env_list = env_to_list(plan.env);
        std::vector<char*> envp;
        for (auto& entry : env_list) {
            envp.push_back(entry.data());
        }
        envp.push_back(nullptr);
        std::string argv0 = program;
        char* argv[] = {argv0.data(), nullptr};
        // A link to the layers path is executed through its target (the
        // link itself points at the container's /layers).
        std::string file = program;
        if (index < plan.exec_d_files.size() && !plan.exec_d_files[index].empty()) {
            file = plan.exec_d_files[index];
        }
        pid_t pid = ::fork();
        if (pid < 0) {
            return base::errno_error("fork for exec.d program `{}`", program);
        }
        if (pid == 0) {
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            int w = write_end.get();
            if (w == 3) {
                ::fcntl(3, F_SETFD, 0);  // dup2 onto itself would keep CLOEXEC
            } else if (::dup2(w, 3) != 3) {
                ::_exit(126);
            }
            if (::chdir(app_dir.c_str()) != 0) {
                ::_exit(126);
            }
            ::execve(file.c_str(), argv, envp.data());
            ::_exit(errno == ENOENT ? 127 : 126);
        }
        write_end.reset();
        std::string output;
        char buffer[16384];
        bool too_big = false;
        while (true) {
            ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                break;
            }
            output.append(buffer, static_cast<size_t>(n));
            if (output.size() > kMaxOutput) {
                too_big = true;
                ::kill(pid, SIGKILL);
                break;
            }
        }
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (too_big) {
            return base::invalid_argument("exec.d program `{}` wrote more than {} bytes to fd 3",
                                          program, kMaxOutput);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            return base::failed_precondition(
                "exec.d program `{}` failed ({})", program,
                WIFEXITED(status) ? fmt::format("exit status {}", WEXITSTATUS(status))
                                  : fmt::format("signal {}", WTERMSIG(status)));
        }
        TRY(apply_exec_d_output(plan.env, output, program));
    }
    return base::ok();
}

base::Result<LaunchPlan> compute_launch(const LaunchRequest& request) {
    auto layers_fd = base::open_file(request.layers_dir, O_RDONLY | O_DIRECTORY);
    if (!layers_fd) {
        return std::move(layers_fd.error()).context("opening the layers dir");
    }
    auto platform_api = parse_api_version(request.platform_api);
    if (!platform_api) {
        return std::move(platform_api.error()).context("platform api");
    }
    // What the process sees, and (host mode) what buildpack-written
    // container paths become.
    const std::string layers_value = request.host_mode ? request.layers_dir : request.layers_path;
    const std::string app_value = request.host_mode ? request.host_app_dir : request.app_path;
    Prefixes prefixes;
    if (request.host_mode) {
        if (request.host_app_dir.empty()) {
            return base::invalid_argument("host mode needs the host app dir");
        }
        prefixes = {{request.layers_path, request.layers_dir},
                    {request.app_path, request.host_app_dir}};
    }
    ValueRewrite rewrite;
    if (request.host_mode) {
        rewrite = [&prefixes](std::string_view value) {
            return rewrite_path_list(value, prefixes);
        };
    }

    Tree tree{layers_fd->get(), request.layers_path};
    std::string metadata_file = "config/metadata.toml";
    std::string text = TRY(internal::read_file(tree, metadata_file));
    BuildMetadata metadata = TRY(parse_metadata_toml(text, tree.display(metadata_file)));
    for (const auto& bp : metadata.buildpacks) {
        auto api = parse_api_version(bp.api);
        if (!api || !buildpack_api_supported(*api)) {
            return base::unsupported(
                "{}: buildpack `{}` has Buildpack API `{}` (supported: 0.7 to 0.12)",
                tree.display(metadata_file), bp.id, bp.api);
        }
    }

    // Process selection (§4.4 steps 2–3).
    LaunchPlan plan;
    const Process* process = nullptr;
    std::string type = request.process_type;
    if (type.empty() && request.user_args.empty()) {
        type = metadata.default_process;
        if (type.empty()) {
            return base::invalid_argument("when there is no default process a command is required");
        }
    }
    if (!type.empty()) {
        TRY(validate_process_type(type));
        for (const auto& candidate : metadata.processes) {
            if (candidate.type == type) {
                process = &candidate;
            }
        }
        if (process == nullptr) {
            std::string known;
            for (const auto& candidate : metadata.processes) {
                known += (known.empty() ? "" : ", ") + candidate.type;
            }
            return base::not_found("{}: no process type `{}` (processes: {})",
                                   tree.display(metadata_file), type,
                                   known.empty() ? "none" : known);
        }
        if (*platform_api >= ApiVersion{0, 15} && !process->exec_env.empty() &&
            std::find(process->exec_env.begin(), process->exec_env.end(), request.exec_env) ==
                process->exec_env.end()) {
            return base::failed_precondition(
                "process `{}` is not eligible in exec env `{}` (its exec-env: {})", type,
                request.exec_env, fmt::join(process->exec_env, ", "));
        }
    }

    std::string command0;
    std::vector<std::string> args;
    if (process != nullptr) {
        plan.process_type = process->type;
        plan.buildpack_id = process->buildpack_id;
        plan.direct = process->direct;
        plan.working_dir = process->working_dir;
        ApiVersion bp_api{0, 12};
        for (const auto& bp : metadata.buildpacks) {
            if (bp.id == process->buildpack_id) {
                bp_api = *parse_api_version(bp.api);
            }
        }
        command0 = process->command.front();
        std::vector<std::string> fixed(process->command.begin() + 1, process->command.end());
        const auto& user = request.user_args;
        if (*platform_api < ApiVersion{0, 10}) {
            args = fixed;
            args.insert(args.end(), process->args.begin(), process->args.end());
            args.insert(args.end(), user.begin(), user.end());
        } else if (!fixed.empty()) {
            args = fixed;
            const auto& tail = user.empty() ? process->args : user;
            args.insert(args.end(), tail.begin(), tail.end());
        } else if (user.empty()) {
            args = process->args;
        } else if (bp_api < ApiVersion{0, 9}) {
            args = process->args;
            args.insert(args.end(), user.begin(), user.end());
        } else {
            args = user;
        }
    } else {
        plan.direct = request.user_command_direct;
        command0 = request.user_args.front();
        args.assign(request.user_args.begin() + 1, request.user_args.end());
    }
    if (plan.working_dir.empty()) {
        plan.working_dir = app_value;
    } else if (!plan.working_dir.starts_with('/')) {
        // The reference's launcher is in <app> when it chdirs to it.
        plan.working_dir = join(app_value, plan.working_dir);
    } else if (request.host_mode) {
        plan.working_dir = rewrite_one(plan.working_dir, prefixes);
    }
    if (request.host_mode) {
        if (command0.starts_with('/')) {
            command0 = rewrite_one(command0, prefixes);
        }
        for (auto& arg : args) {
            if (arg.starts_with('/')) {
                arg = rewrite_one(arg, prefixes);
            }
        }
    }

    // The environment (§4.4 step 4).
    EnvMap env = launch_base_env(request.base_env);
    struct BuildpackLayers {
        ApiVersion api;
        std::vector<Layer> layers;
    };
    std::vector<BuildpackLayers> per_buildpack;
    for (const auto& bp : metadata.buildpacks) {
        if (auto valid = validate_id(bp.id); !valid) {
            return base::invalid_argument("{}: {}", tree.display(metadata_file),
                                          valid.error().message());
        }
        std::string esc = escape_id(bp.id);
        if (TRY(internal::entry_type(tree, esc)) != EntryType::Directory) {
            continue;
        }
        BuildpackLayers entry{*parse_api_version(bp.api),
                              TRY(layer_dirs(tree, esc, request.layers))};
        for (const auto& layer : entry.layers) {
            TRY(add_root_dirs(env, {tree.fd, tree.name, layer.rel}, join(layers_value, layer.rel),
                              RootDirs::Launch));
        }
        auto action = TRY(unsuffixed_env_action(bp.api));
        for (const auto& layer : entry.layers) {
            TRY(apply_env_dir(env, {tree.fd, tree.name, join(layer.rel, "env")}, action, rewrite));
            TRY(apply_env_dir(env, {tree.fd, tree.name, join(layer.rel, "env.launch")}, action,
                              rewrite));
            if (!plan.process_type.empty()) {
                TRY(apply_env_dir(
                    env,
                    {tree.fd, tree.name, join(join(layer.rel, "env.launch"), plan.process_type)},
                    action, rewrite));
            }
        }
        per_buildpack.push_back(std::move(entry));
    }
    for (const auto& bp : per_buildpack) {
        for (const auto& layer : bp.layers) {
            std::vector<ListedFile> listed =
                TRY(files_in(tree, join(layer.rel, "exec.d"), layers_value, request.layers_path));
            if (!plan.process_type.empty()) {
                for (auto& file :
                     TRY(files_in(tree, join(join(layer.rel, "exec.d"), plan.process_type),
                                  layers_value, request.layers_path))) {
                    listed.push_back(std::move(file));
                }
            }
            for (auto& file : listed) {
                plan.exec_d.push_back(std::move(file.path));
                plan.exec_d_files.push_back(std::move(file.file));
            }
        }
    }
    plan.env = std::move(env);

    if (plan.direct) {
        // LookPath runs after chdir(<app>): a relative command resolves
        // against the app dir, not the working dir.
        if (request.host_mode) {
            plan.executable = TRY(look_path(command0, plan.env, app_value));
        } else if (command0.find('/') != std::string::npos && command0.front() != '/') {
            plan.executable = join(app_value, command0);
        }
        plan.argv = {command0};
        plan.argv.insert(plan.argv.end(), args.begin(), args.end());
        return plan;
    }

    // A shell process (§4.4 step 6): profile.d scripts, then .profile, cd,
    // then the command (a script when there are no args, else each token
    // re-evaluated so `$VAR` in args expands).
    for (const auto& bp : per_buildpack) {
        for (const auto& layer : bp.layers) {
            for (auto& file : TRY(files_in(tree, join(layer.rel, "profile.d"), layers_value,
                                           request.layers_path))) {
                plan.profile_d.push_back(std::move(file.file));
            }
            if (!plan.process_type.empty()) {
                for (auto& file :
                     TRY(files_in(tree, join(join(layer.rel, "profile.d"), plan.process_type),
                                  layers_value, request.layers_path))) {
                    plan.profile_d.push_back(std::move(file.file));
                }
            }
        }
    }
    std::string script;
    for (const auto& profile : plan.profile_d) {
        script += "source " + shell_quote(profile) + "\n";
    }
    std::string dot_profile = join(app_value, ".profile");
    script += "if [ -f " + shell_quote(dot_profile) + " ]; then source " +
              shell_quote(dot_profile) + "; fi\n";
    script += "cd " + shell_quote(plan.working_dir) + "\n";
    if (args.empty()) {
        script += "exec bash -c \"$@\"";
    } else {
        script += "exec \"$(eval echo \\\"$1\\\")\"";
        for (size_t i = 0; i < args.size(); ++i) {
            script += fmt::format(" \"$(eval echo \\\"${{{}}}\\\")\"", i + 2);
        }
    }
    plan.executable = "/bin/bash";
    plan.argv = {"bash", "-c", script, "launcher", command0};
    plan.argv.insert(plan.argv.end(), args.begin(), args.end());
    return plan;
}

}  // namespace locald::cnb
