#include "cnb/build.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "base/atomic_file.h"
#include "base/confined.h"
#include "base/sys.h"
#include "base/temp_dir.h"
#include "cnb/internal/toml_util.h"
#include "cnb/internal/tree.h"
#include "ns/launcher.h"

namespace locald::cnb {

namespace {

using internal::EntryType;
using internal::join;
using internal::Tree;

base::Result<base::UniqueFd> open_dir(const std::string& path, std::string_view what) {
    auto fd = base::open_file(path, O_RDONLY | O_DIRECTORY);
    if (!fd) {
        return std::move(fd.error()).context(fmt::format("opening the {} dir", what));
    }
    return fd;
}

// The host dir, or nullopt when the caller gave none or it does not exist.
base::Result<std::optional<base::UniqueFd>> open_optional_dir(const std::string& path,
                                                              std::string_view what) {
    if (path.empty()) {
        return std::optional<base::UniqueFd>();
    }
    auto fd = base::open_file(path, O_RDONLY | O_DIRECTORY);
    if (!fd) {
        if (fd.error().errno_value() == ENOENT) {
            return std::optional<base::UniqueFd>();
        }
        return std::move(fd.error()).context(fmt::format("opening the {} dir", what));
    }
    return std::optional<base::UniqueFd>(fd.release_value());
}

// Entries of the remaining plan this buildpack provides, all their requirements.
std::vector<BuildRequire> plan_for(const std::vector<BuildPlanEntry>& plan, const std::string& id) {
    std::vector<BuildRequire> out;
    for (const auto& entry : plan) {
        if (std::find(entry.providers.begin(), entry.providers.end(), id) !=
            entry.providers.end()) {
            out.insert(out.end(), entry.requirements.begin(), entry.requirements.end());
        }
    }
    return out;
}

struct Ctx {
    const BuildRequest& request;
    int layers_fd;
    std::optional<base::UniqueFd> platform_fd;
    std::optional<base::UniqueFd> build_config_fd;
    std::string scratch;
    EnvMap shared_env;
    std::vector<BuildPlanEntry> plan;
};

base::Result<EnvMap> invocation_env(Ctx& ctx, const BuildGroupEntry& bp, ApiVersion api,
                                    const std::string& bp_dir, const std::string& layers_path,
                                    const std::string& plan_path) {
    const BuildRequest& request = ctx.request;
    EnvMap env = ctx.shared_env;
    if (!bp.clear_env && ctx.platform_fd) {
        TRY(apply_platform_env(env, {ctx.platform_fd->get(), request.platform_dir, "env"}));
    }
    if (ctx.build_config_fd) {
        TRY(apply_env_dir(env, {ctx.build_config_fd->get(), request.build_config_dir, "env"},
                          EnvAction::Default));
    }
    env["CNB_BUILDPACK_DIR"] = bp_dir;
    if (api >= ApiVersion{0, 8}) {
        env["CNB_LAYERS_DIR"] = layers_path;
        env["CNB_PLATFORM_DIR"] = request.platform_path;
        env["CNB_BP_PLAN_PATH"] = plan_path;
    }
    if (api >= ApiVersion{0, 10}) {
        env["CNB_TARGET_OS"] = request.target.os;
        env["CNB_TARGET_ARCH"] = request.target.arch;
        // os and arch always, the rest only when known (platform.EnvVarsFor).
        for (const auto& [name, value] :
             {std::pair<const char*, const std::string&>{"CNB_TARGET_ARCH_VARIANT",
                                                         request.target.arch_variant},
              {"CNB_TARGET_DISTRO_NAME", request.target.distro_name},
              {"CNB_TARGET_DISTRO_VERSION", request.target.distro_version}}) {
            if (!value.empty()) {
                env[name] = value;
            }
        }
    }
    if (api >= ApiVersion{0, 12}) {
        env["CNB_EXEC_ENV"] = request.exec_env;
    }
    return env;
}

// After a successful bin/build: the `<layer>.toml` files in name order.
base::Result<void> collect_layers(Ctx& ctx, const std::string& esc, ApiVersion api,
                                  BuiltBuildpack& built) {
    Tree tree{ctx.layers_fd, ctx.request.layers_path};
    auto entries = TRY(internal::list_dir(tree, esc));
    if (!entries) {
        return base::failed_precondition("`{}` disappeared during the build", tree.display(esc));
    }
    auto action = TRY(unsuffixed_env_action(fmt::format("{}.{}", api.major, api.minor)));
    base::UniqueFd bp_fd;
    for (const auto& entry : *entries) {
        constexpr std::string_view kSuffix = ".toml";
        if (entry.type != EntryType::File || entry.name.size() < kSuffix.size() ||
            entry.name.compare(entry.name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
            continue;
        }
        std::string name = entry.name.substr(0, entry.name.size() - kSuffix.size());
        if (name == "launch" || name == "build" || name == "store") {
            continue;  // reserved: the buildpack's own files, not layers
        }
        std::string file = join(esc, entry.name);
        if (name.empty() || name == "." || name == ".." || name.find('\0') != std::string::npos) {
            return base::invalid_argument("`{}`: `{}` cannot be a layer name", tree.display(file),
                                          name);
        }
        auto text = TRY(internal::read_file(tree, file));
        LayerFile layer = TRY(parse_layer_toml(text, tree.display(file)));
        std::string layer_rel = join(esc, name);
        if (!layer.types.any()) {
            // A layer nobody asked to keep must not reach later buildpacks
            // or the image (pitfall 8): rename it aside, as the lifecycle.
            if (!bp_fd) {
                bp_fd = TRY(base::open_in_root(ctx.layers_fd, esc, O_RDONLY | O_DIRECTORY));
            }
            std::string ignored = name + ".ignore";
            if (::renameat(bp_fd.get(), name.c_str(), bp_fd.get(), ignored.c_str()) != 0 &&
                errno != ENOENT) {
                return base::errno_error("renaming `{}` to `{}`", tree.display(layer_rel), ignored);
            }
            continue;
        }
        if (layer.types.build) {
            EnvDirRef ref{ctx.layers_fd, ctx.request.layers_path, layer_rel};
            std::string value = join(ctx.request.layers_path, layer_rel);
            TRY(add_root_dirs(ctx.shared_env, ref, value, RootDirs::Build));
            TRY(apply_env_dir(ctx.shared_env, {ref.root_fd, ref.root_name, join(layer_rel, "env")},
                              action));
            TRY(apply_env_dir(ctx.shared_env,
                              {ref.root_fd, ref.root_name, join(layer_rel, "env.build")}, action));
        }
        built.layers.push_back({name, layer.types, std::move(layer.metadata_toml)});
    }
    return base::ok();
}

// §3.7: `<layers>/<esc>/{launch,build,<layer>}.sbom.<ext>.json`; an
// unknown extension or an undeclared media type fails the build; copies go
// to `<layers>/sbom/<kind>/<esc>/[<layer>/]sbom.<ext>.json` — launch layers
// (and launch.sbom) to launch, build layers without launch (and build.sbom)
// to build, cache layers to cache.
base::Result<void> collect_sbom(Ctx& ctx, const std::string& esc, const BuildGroupEntry& bp,
                                const BuiltBuildpack& built) {
    static const std::vector<std::pair<std::string_view, std::string_view>> kTypes = {
        {"cdx", "application/vnd.cyclonedx+json"},
        {"spdx", "application/spdx+json"},
        {"syft", "application/vnd.syft+json"},
    };
    constexpr size_t kMaxSbom = 64u << 20;
    Tree tree{ctx.layers_fd, ctx.request.layers_path};
    auto entries = TRY(internal::list_dir(tree, esc));
    if (!entries) {
        return base::ok();
    }
    for (const auto& entry : *entries) {
        const std::string& name = entry.name;
        size_t marker = name.rfind(".sbom.");
        if (entry.type != EntryType::File || marker == std::string::npos ||
            !name.ends_with(".json") || marker + 6 > name.size() - 5) {
            continue;
        }
        std::string owner = name.substr(0, marker);
        std::string ext = name.substr(marker + 6, name.size() - 5 - (marker + 6));
        std::string file = join(esc, name);
        auto type = std::find_if(kTypes.begin(), kTypes.end(),
                                 [&](const auto& t) { return t.first == ext; });
        if (type == kTypes.end()) {
            return base::invalid_argument(
                "`{}`: unknown SBOM extension `{}` (expected sbom.cdx.json, sbom.spdx.json or "
                "sbom.syft.json)",
                tree.display(file), ext);
        }
        if (bp.sbom_formats && std::find(bp.sbom_formats->begin(), bp.sbom_formats->end(),
                                         type->second) == bp.sbom_formats->end()) {
            return base::invalid_argument(
                "`{}`: undeclared SBOM media type `{}` (buildpack.toml sbom-formats of `{}@{}`: "
                "[{}])",
                tree.display(file), type->second, bp.id, bp.version,
                fmt::join(*bp.sbom_formats, ", "));
        }
        std::vector<std::string> destinations;
        const std::string leaf = fmt::format("sbom.{}.json", ext);
        if (owner == "launch" || owner == "build") {
            destinations.push_back(join(join(join("sbom", owner), esc), leaf));
        } else {
            auto layer = std::find_if(built.layers.begin(), built.layers.end(),
                                      [&](const BuiltLayer& l) { return l.name == owner; });
            if (layer == built.layers.end()) {
                continue;  // the SBOM of a dropped (or never declared) layer
            }
            auto dest = [&](std::string_view kind) {
                return join(join(join(join("sbom", kind), esc), owner), leaf);
            };
            if (layer->types.launch) {
                destinations.push_back(dest("launch"));
            } else if (layer->types.build) {
                destinations.push_back(dest("build"));
            }
            if (layer->types.cache) {
                destinations.push_back(dest("cache"));
            }
        }
        std::string content = TRY(internal::read_file(tree, file, kMaxSbom));
        for (const auto& destination : destinations) {
            std::string parent = destination.substr(0, destination.rfind('/'));
            TRY(base::mkdir_all_in_root(ctx.layers_fd, parent, 0755));
            auto dir = TRY(base::open_in_root(ctx.layers_fd, parent, O_RDONLY | O_DIRECTORY));
            TRY(base::atomic_write_file_at(dir.get(), leaf, content, 0644));
        }
    }
    return base::ok();
}

}  // namespace

base::Result<std::string> render_buildpack_plan(const std::vector<BuildRequire>& requirements) {
    toml::array entries;
    for (const auto& require : requirements) {
        toml::table entry;
        entry.insert("name", require.name);
        if (!require.metadata_toml.empty()) {
            auto metadata = internal::parse_toml(require.metadata_toml, "plan entry metadata");
            if (!metadata) {
                return std::move(metadata.error())
                    .context(fmt::format("plan entry `{}`", require.name));
            }
            entry.insert("metadata", std::move(*metadata));
        }
        entries.push_back(std::move(entry));
    }
    toml::table root;
    root.insert("entries", std::move(entries));
    return internal::to_toml_text(root) + "\n";
}

base::Result<BuildResult> run_build(const BuildRequest& request, const BuildpackRunner& runner) {
    base::UniqueFd layers_fd = TRY(open_dir(request.layers_dir, "layers"));
    Ctx ctx{request,
            layers_fd.get(),
            TRY(open_optional_dir(request.platform_dir, "platform")),
            TRY(open_optional_dir(request.build_config_dir, "build-config")),
            "",
            {},
            request.plan};
    ctx.scratch = request.scratch_dir;
    if (ctx.scratch.empty()) {
        const char* tmp = std::getenv("TMPDIR");
        ctx.scratch = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    }
    ctx.shared_env = filter_build_base_env(request.base_env);
    ApiVersion platform_api{};
    {
        auto parsed = parse_api_version(request.platform_api);
        if (!parsed) {
            return std::move(parsed.error()).context("platform api");
        }
        platform_api = *parsed;
    }

    BuildResult result;
    std::vector<std::vector<Process>> processes;
    for (const auto& bp : request.group) {
        std::string label = fmt::format("buildpack `{}@{}`", bp.id, bp.version);
        auto valid = validate_id(bp.id);
        if (!valid) {
            return std::move(valid.error()).context(label);
        }
        auto parsed_api = parse_api_version(bp.api);
        if (!parsed_api) {
            return std::move(parsed_api.error()).context(label);
        }
        ApiVersion api = *parsed_api;
        if (!buildpack_api_supported(api)) {
            return base::unsupported(
                "{}: Buildpack API {} is not supported (supported: 0.7 to 0.12)", label, bp.api);
        }
        const std::string esc = escape_id(bp.id);
        const std::string bp_dir =
            bp.dir.empty() ? join(join(request.buildpacks_path, esc), bp.version) : bp.dir;
        const std::string layers_path = join(request.layers_path, esc);

        // The buildpack's layers dir, writable by the build user whatever
        // uid it maps to (the lifecycle creates it 0777 as that user).
        {
            TRY(base::mkdir_all_in_root(ctx.layers_fd, esc, 0777));
            auto dir = TRY(base::open_in_root(ctx.layers_fd, esc, O_RDONLY | O_DIRECTORY));
            if (::fchmod(dir.get(), 0777) != 0) {
                return base::errno_error("chmod `{}`", layers_path);
            }
        }

        // A fresh plan file, visible only to this invocation.
        std::vector<BuildRequire> bp_plan = plan_for(ctx.plan, bp.id);
        base::TempDir plan_dir = TRY(base::TempDir::create_in(ctx.scratch, esc));
        std::string plan_text = TRY(render_buildpack_plan(bp_plan));
        TRY(base::mkdir_p(plan_dir.join(esc), 0755));
        TRY(base::write_file(plan_dir.join(esc) + "/plan.toml", plan_text, 0644));
        if (::chmod(plan_dir.path().c_str(), 0755) != 0) {
            return base::errno_error("chmod `{}`", plan_dir.path());
        }
        std::string plan_leaf = plan_dir.path().substr(plan_dir.path().rfind('/') + 1);
        std::string plan_container_dir = join(request.plan_parent_path, plan_leaf);
        std::string plan_path = join(join(plan_container_dir, esc), "plan.toml");

        EnvMap env = TRY(invocation_env(ctx, bp, api, bp_dir, layers_path, plan_path));
        BuildpackInvocation invocation;
        invocation.buildpack = fmt::format("{}@{}", bp.id, bp.version);
        invocation.argv = {join(bp_dir, "bin/build"), layers_path, request.platform_path,
                           plan_path};
        invocation.env = env_to_list(env);
        invocation.cwd = request.app_path;
        invocation.plan_host_dir = plan_dir.path();
        invocation.plan_container_dir = plan_container_dir;
        auto status = runner(invocation);
        if (!status) {
            return std::move(status.error()).context(fmt::format("running {}", label));
        }
        if (*status != 0) {
            result.failed = true;
            result.failed_buildpack = invocation.buildpack;
            result.failed_status = *status;
            result.remaining_plan = ctx.plan;
            result.final_env = ctx.shared_env;
            return result;
        }

        BuiltBuildpack built;
        built.id = bp.id;
        built.version = bp.version;
        Tree tree{ctx.layers_fd, request.layers_path};
        if (auto text = TRY(internal::read_optional_file(tree, join(esc, "build.toml")))) {
            BuildFile build = TRY(parse_build_toml(*text, tree.display(join(esc, "build.toml"))));
            for (const auto& name : build.unmet) {
                bool in_plan = std::any_of(bp_plan.begin(), bp_plan.end(),
                                           [&](const BuildRequire& r) { return r.name == name; });
                if (!in_plan) {
                    return base::invalid_argument(
                        "`{}`: unmet `{}` is not an entry of the buildpack's plan",
                        tree.display(join(esc, "build.toml")), name);
                }
            }
            built.unmet = std::move(build.unmet);
        }
        // Every plan entry the buildpack met leaves the plan; unmet ones
        // stay for the next provider (lifecycle Plan.Filter).
        std::set<std::string> met;
        for (const auto& require : bp_plan) {
            if (std::find(built.unmet.begin(), built.unmet.end(), require.name) ==
                built.unmet.end()) {
                met.insert(require.name);
            }
        }
        std::erase_if(ctx.plan, [&](const BuildPlanEntry& entry) {
            return !entry.requirements.empty() && met.count(entry.requirements.front().name) > 0;
        });

        if (auto text = TRY(internal::read_optional_file(tree, join(esc, "launch.toml")))) {
            LaunchFile launch =
                TRY(parse_launch_toml(*text, tree.display(join(esc, "launch.toml")), api, bp.id));
            for (const auto& warning : launch.warnings) {
                if (request.warn) {
                    request.warn(warning);
                }
            }
            processes.push_back(std::move(launch.processes));
            result.metadata.labels.insert(result.metadata.labels.end(), launch.labels.begin(),
                                          launch.labels.end());
            result.metadata.slices.insert(result.metadata.slices.end(), launch.slices.begin(),
                                          launch.slices.end());
        }
        if (auto text = TRY(internal::read_optional_file(tree, join(esc, "store.toml")))) {
            built.store_metadata_toml =
                TRY(parse_store_toml(*text, tree.display(join(esc, "store.toml"))));
        }
        TRY(collect_layers(ctx, esc, api, built));
        TRY(collect_sbom(ctx, esc, bp, built));
        result.metadata.buildpacks.push_back({bp.id, bp.version, bp.api, bp.homepage});
        result.buildpacks.push_back(std::move(built));
    }

    MergedProcesses merged = merge_processes(processes, request.warn);
    result.metadata.processes = std::move(merged.processes);
    result.metadata.default_process = std::move(merged.default_process);
    result.remaining_plan = ctx.plan;
    result.final_env = ctx.shared_env;

    // <layers>/config/metadata.toml, through the confined dir: a buildpack
    // may have planted `config` as a symlink.
    auto written = [&]() -> base::Result<void> {
        TRY(base::mkdir_all_in_root(ctx.layers_fd, "config", 0755));
        auto config = TRY(base::open_in_root(ctx.layers_fd, "config", O_RDONLY | O_DIRECTORY));
        return base::atomic_write_file_at(config.get(), "metadata.toml",
                                          render_metadata_toml(result.metadata, platform_api),
                                          0644);
    }();
    if (!written) {
        return std::move(written.error())
            .context(fmt::format("writing `{}` (a buildpack may have planted `config`)",
                                 join(request.layers_path, "config/metadata.toml")));
    }
    return result;
}

BuildpackRunner launcher_runner(BuildContainer container) {
    return [container =
                std::move(container)](const BuildpackInvocation& invocation) -> base::Result<int> {
        ns::ContainerSpec spec;
        spec.name = container.name;
        spec.rootfs = container.rootfs;
        spec.args = invocation.argv;
        spec.env = invocation.env;
        spec.exact_env = true;
        spec.cwd = invocation.cwd;
        spec.user = container.user;
        spec.network = container.network;
        spec.user_namespace = container.user_namespace;
        spec.mounts.push_back({ns::MountKind::Bind, container.app_dir, "/workspace", false, {}});
        spec.mounts.push_back({ns::MountKind::Bind, container.layers_dir, "/layers", false, {}});
        if (!container.cache_dir.empty()) {
            spec.mounts.push_back({ns::MountKind::Bind, container.cache_dir, "/cache", false, {}});
        }
        if (!container.platform_dir.empty()) {
            spec.mounts.push_back(
                {ns::MountKind::Bind, container.platform_dir, "/platform", true, {}});
        }
        // A private tmpfs at the plan's parent (/tmp): the plan's mount
        // point is made there, not in the shared builder rootfs, and each
        // bin/build gets a fresh writable /tmp as in the reference's
        // container.
        std::string plan_parent =
            invocation.plan_container_dir.substr(0, invocation.plan_container_dir.rfind('/'));
        if (!plan_parent.empty()) {
            spec.mounts.push_back({ns::MountKind::Tmpfs, "", plan_parent, false, {"mode=1777"}});
        }
        // Read-only: the plan is input, and files the build user wrote
        // there could not be removed by us afterwards.
        spec.mounts.push_back({ns::MountKind::Bind,
                               invocation.plan_host_dir,
                               invocation.plan_container_dir,
                               true,
                               {}});
        ns::LaunchOptions options;
        options.warn = container.warn;
        return ns::Launcher::run(spec, options);
    };
}

}  // namespace locald::cnb
