// cli/cmd_container.cc — `locald container run`: one container in the
// foreground, rootless, exiting with the container's status.
//
// Turns the command line (and, for an image, its config) into an
// ns::ContainerSpec with Docker's semantics and calls the launcher:
//   argv  = (--entrypoint E | image Entrypoint) + (CMD… | image Cmd, dropped
//           when --entrypoint is given without CMD)
//   env   = image Env < --env-file < -e (later keys replace earlier ones)
//   cwd   = -w | image WorkingDir | /
//   user  = -u | image User
// `--rootfs DIR` runs a directory as the root filesystem instead of an image.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "base/paths.h"
#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/container_run.h"
#include "image/prepare.h"
#include "ns/doctor.h"
#include "ns/launcher.h"
#include "ns/spec.h"
#include "oci/progress.h"

namespace locald::cli {

const char kContainerHelp[] =
    "usage: locald container run [OPTIONS] IMAGE [CMD…]\n"
    "       locald container run [OPTIONS] --rootfs DIR CMD…\n"
    "\n"
    "Runs a container in the foreground as your own user (user namespaces; no\n"
    "daemon, no root) and exits with its status (128+N when killed by signal N).\n"
    "IMAGE is pulled when it is not in the store.\n"
    "\n"
    "options:\n"
    "  --rm                  remove the container's writable layer afterwards (always done)\n"
    "  -i, --interactive     keep stdin attached (otherwise stdin is /dev/null)\n"
    "  -t, --tty             give the container its own terminal, relayed to this one\n"
    "  --name NAME           container name (also the hostname)\n"
    "  -e, --env K=V         set an environment variable (K alone: take it from here)\n"
    "  --env-file FILE       read K=V lines from FILE\n"
    "  -v, --volume SRC:DST[:ro]  bind a host path (absolute or ./relative) or a named\n"
    "                        volume (a plain NAME, kept under the data dir)\n"
    "  -w, --workdir DIR     working directory inside the container\n"
    "  -u, --user USER[:GROUP]  user inside the container (name or id)\n"
    "  --entrypoint CMD      replace the image's entrypoint\n"
    "  --network host|none   share the host network (default) or only loopback\n"
    "  --memory SIZE         memory limit (512M, 2G)\n"
    "  --cpus N              CPU limit (1.5)\n"
    "  --pids N              process limit\n"
    "  --read-only           mount the root filesystem read-only\n"
    "  --hostname NAME       hostname (default: the name)\n"
    "  --rootfs DIR          use DIR as the root filesystem instead of an image\n";

namespace {

void set_env(std::vector<std::string>& env, const std::string& entry) {
    std::string key = entry.substr(0, entry.find('='));
    for (auto& existing : env) {
        if (existing.compare(0, key.size() + 1, key + "=") == 0) {
            existing = entry;
            return;
        }
    }
    env.push_back(entry);
}

// "K=V" as given; "K" alone copies K from our environment (Docker), or is
// dropped when unset.
std::optional<std::string> env_entry(const std::string& text) {
    if (text.find('=') != std::string::npos) {
        return text;
    }
    const char* value = std::getenv(text.c_str());
    if (value == nullptr) {
        return std::nullopt;
    }
    return text + "=" + value;
}

base::Result<std::vector<std::string>> read_env_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        return base::errno_error("reading the env file `{}`", path);
    }
    std::vector<std::string> out;
    std::string line;
    size_t line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        size_t start = line.find_first_not_of(" \t");
        if (start == std::string::npos || line[start] == '#') {
            continue;
        }
        line = line.substr(start);
        if (line[0] == '=') {
            return base::invalid_argument("{}:{}: empty variable name", path, line_no);
        }
        if (auto entry = env_entry(line)) {
            out.push_back(*entry);
        }
    }
    return out;
}

base::Result<std::string> absolute(const std::string& path) {
    if (!path.empty() && path.front() == '/') {
        return path;
    }
    char* cwd = ::getcwd(nullptr, 0);
    if (cwd == nullptr) {
        return base::errno_error("getcwd");
    }
    std::string out = fmt::format("{}/{}", cwd, path);
    std::free(cwd);
    return out;
}

bool valid_volume_name(std::string_view name) {
    if (name.empty() || name.size() > 128 || name[0] == '.' || name[0] == '-') {
        return false;
    }
    for (char c : name) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

base::Result<ns::Mount> parse_volume(const std::string& text, const base::Paths& paths) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (;;) {
        size_t colon = text.find(':', start);
        parts.push_back(text.substr(start, colon == std::string::npos ? colon : colon - start));
        if (colon == std::string::npos) {
            break;
        }
        start = colon + 1;
    }
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty()) {
        return base::invalid_argument("-v `{}`: expected SRC:DST[:ro|rw]", text);
    }
    ns::Mount mount;
    mount.destination = parts[1];
    if (mount.destination.front() != '/') {
        return base::invalid_argument("-v `{}`: the destination must be absolute", text);
    }
    if (parts.size() == 3) {
        if (parts[2] == "ro") {
            mount.read_only = true;
        } else if (parts[2] != "rw") {
            return base::invalid_argument("-v `{}`: unknown mode `{}` (ro or rw)", text, parts[2]);
        }
    }
    const std::string& source = parts[0];
    if (source.front() == '/' || source.front() == '.') {
        mount.kind = ns::MountKind::Bind;
        mount.source = TRY(absolute(source));
        struct stat st;
        if (::stat(mount.source.c_str(), &st) != 0) {
            return base::errno_error("-v `{}`: bind source `{}`", text, mount.source);
        }
        return mount;
    }
    if (!valid_volume_name(source)) {
        return base::invalid_argument(
            "-v `{}`: `{}` is neither a path (/… or ./…) nor a volume name", text, source);
    }
    // Named volumes live under the data dir, created on first use.
    mount.kind = ns::MountKind::Volume;
    std::string volumes = paths.data + "/volumes";
    TRY(base::ensure_private_dir(paths.data));
    if (::mkdir(volumes.c_str(), 0700) != 0 && errno != EEXIST) {
        return base::errno_error("creating `{}`", volumes);
    }
    mount.source = fmt::format("{}/{}", volumes, source);
    if (::mkdir(mount.source.c_str(), 0755) != 0 && errno != EEXIST) {
        return base::errno_error("creating the volume `{}`", mount.source);
    }
    return mount;
}

base::Result<int64_t> parse_positive(const std::string& flag, const std::string& text) {
    char* end = nullptr;
    errno = 0;
    long long value = std::strtoll(text.c_str(), &end, 10);
    if (errno != 0 || end == text.c_str() || *end != '\0' || value <= 0) {
        return base::invalid_argument("{} `{}`: expected a positive integer", flag, text);
    }
    return static_cast<int64_t>(value);
}

}  // namespace

int run_container_run(std::span<const std::string> args) {
    static const OptionSpec kOptions[] = {
        {"rm"},
        {"interactive", 'i'},
        {"tty", 't'},
        {"name", 0, true},
        {"env", 'e', true, true},
        {"env-file", 0, true, true},
        {"volume", 'v', true, true},
        {"workdir", 'w', true},
        {"user", 'u', true},
        {"entrypoint", 0, true},
        {"network", 0, true},
        {"memory", 'm', true},
        {"cpus", 0, true},
        {"pids", 0, true},
        {"read-only"},
        {"hostname", 0, true},
        {"rootfs", 0, true},
    };
    auto parsed = parse_args(args, kOptions, /*stop_at_first_positional=*/true);
    if (!parsed) {
        return report_usage("container", parsed.error());
    }
    auto paths = base::Paths::from_env();
    if (!paths) {
        return report_error(paths.error());
    }
    std::vector<std::string> positional = parsed->positional();
    for (const auto& extra : parsed->rest()) {
        positional.push_back(extra);
    }

    ns::ContainerSpec spec;
    spec.name = parsed->value("name").value_or("");
    spec.hostname = parsed->value("hostname").value_or("");
    spec.tty = parsed->has("tty");
    spec.read_only_rootfs = parsed->has("read-only");
    spec.seccomp_cache_dir = paths->run + "/seccomp";

    image::ImageDefaults defaults;
    std::unique_ptr<image::PreparedRootfs> prepared;
    std::vector<std::string> cmd;
    if (auto rootfs = parsed->value("rootfs")) {
        auto dir = absolute(*rootfs);
        if (!dir) {
            return report_error(dir.error());
        }
        spec.rootfs.path = *dir;
        cmd = positional;
    } else {
        if (positional.empty()) {
            return report_usage("container", base::invalid_argument("missing IMAGE (or --rootfs)"));
        }
        auto ready = prepare_run_rootfs(positional[0]);
        if (!ready) {
            return report_error(ready.error());
        }
        prepared = std::move(*ready);
        defaults = prepared->defaults;
        spec.rootfs = prepared->rootfs;
        cmd.assign(positional.begin() + 1, positional.end());
    }
    if (spec.name.empty() && spec.hostname.empty()) {
        spec.hostname = "locald";
    }

    // Entrypoint and Cmd, as Docker combines them.
    std::vector<std::string> argv;
    if (auto entrypoint = parsed->value("entrypoint")) {
        if (!entrypoint->empty()) {
            argv.push_back(*entrypoint);
        }
    } else {
        argv = defaults.entrypoint;
    }
    if (!cmd.empty()) {
        argv.insert(argv.end(), cmd.begin(), cmd.end());
    } else if (!parsed->has("entrypoint")) {
        argv.insert(argv.end(), defaults.cmd.begin(), defaults.cmd.end());
    }
    if (argv.empty()) {
        return report_usage("container",
                            base::invalid_argument("no command: the image has no Entrypoint or "
                                                   "Cmd and none was given"));
    }
    spec.args = argv;

    spec.env = defaults.env;
    for (const auto& file : parsed->values("env-file")) {
        auto entries = read_env_file(file);
        if (!entries) {
            return report_error(entries.error());
        }
        for (const auto& entry : *entries) {
            set_env(spec.env, entry);
        }
    }
    for (const auto& text : parsed->values("env")) {
        if (text.empty() || text[0] == '=') {
            return report_usage("container", base::invalid_argument("-e `{}`: empty name", text));
        }
        if (auto entry = env_entry(text)) {
            set_env(spec.env, *entry);
        }
    }
    spec.cwd = parsed->value("workdir").value_or(
        defaults.working_dir.empty() ? std::string("/") : defaults.working_dir);
    if (spec.cwd.empty() || spec.cwd.front() != '/') {
        return report_usage("container",
                            base::invalid_argument("-w `{}`: must be absolute", spec.cwd));
    }
    spec.user = parsed->value("user").value_or(defaults.user);

    for (const auto& text : parsed->values("volume")) {
        auto mount = parse_volume(text, *paths);
        if (!mount) {
            return report_usage("container", mount.error());
        }
        spec.mounts.push_back(std::move(*mount));
    }
    std::string network = parsed->value("network").value_or("host");
    if (network == "none") {
        spec.network = ns::NetworkMode::None;
    } else if (network != "host") {
        return report_usage(
            "container", base::invalid_argument("--network `{}`: expected host or none", network));
    }
    if (auto memory = parsed->value("memory")) {
        auto bytes = ns::parse_memory_size(*memory);
        if (!bytes) {
            return report_usage("container", bytes.error());
        }
        spec.resources.memory_bytes = *bytes;
    }
    if (auto cpus = parsed->value("cpus")) {
        char* end = nullptr;
        double value = std::strtod(cpus->c_str(), &end);
        if (end == cpus->c_str() || *end != '\0' || !(value > 0) || !std::isfinite(value)) {
            return report_usage(
                "container", base::invalid_argument("--cpus `{}`: expected a number > 0", *cpus));
        }
        spec.resources.cpus = value;
    }
    if (auto pids = parsed->value("pids")) {
        auto value = parse_positive("--pids", *pids);
        if (!value) {
            return report_usage("container", value.error());
        }
        spec.resources.pids = *value;
    }

    return run_container_foreground(spec, parsed->has("interactive"));
}

base::Result<std::unique_ptr<image::PreparedRootfs>> prepare_run_rootfs(
    const std::string& reference) {
    // Pull progress as `docker run` shows it: one line per layer.
    oci::LineProgress progress(stderr);
    image::PrepareOptions prepare;
    prepare.reference = reference;
    prepare.progress = &progress;
    auto prepared = TRY(image::prepare_image_rootfs(prepare));
    for (const auto& warning : prepared->warnings) {
        std::fprintf(stderr, "locald: warning: %s\n", warning.c_str());
    }
    return prepared;
}

int run_container_foreground(const ns::ContainerSpec& spec, bool interactive) {
    // Without -i the container's stdin is /dev/null, as Docker's.
    if (!interactive) {
        int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd >= 0) {
            ::dup2(null_fd, STDIN_FILENO);
            ::close(null_fd);
        }
    }
    auto status = ns::Launcher::run(spec);
    if (!status) {
        int code = report_error(status.error());
        return ns::exec_failure_status(status.error()).value_or(code);
    }
    return *status;
}

int run_container(std::span<const std::string> args) {
    if (args.empty()) {
        return report_usage("container", base::invalid_argument("missing subcommand (run)"));
    }
    if (args[0] == "run") {
        return run_container_run(args.subspan(1));
    }
    return report_usage("container",
                        base::invalid_argument("unknown subcommand `{}` (run)", args[0]));
}

}  // namespace locald::cli
