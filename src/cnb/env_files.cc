#include "cnb/env_files.h"

#include <array>
#include <utility>

#include "cnb/buildpack.h"
#include "cnb/internal/tree.h"

namespace locald::cnb {

namespace {

using internal::EntryType;
using internal::Tree;

// The variables the lifecycle treats as POSIX path lists (env/env.go
// POSIXBuildEnv keys): the platform env prepends to them.
constexpr std::array<std::string_view, 5> kPathVars = {"PATH", "LD_LIBRARY_PATH", "LIBRARY_PATH",
                                                       "CPATH", "PKG_CONFIG_PATH"};

bool is_path_var(std::string_view name) {
    for (auto var : kPathVars) {
        if (var == name) {
            return true;
        }
    }
    return false;
}

base::Result<void> check_variable(const Tree& tree, const std::string& file, std::string_view name,
                                  std::string_view value) {
    if (name.empty() || name.find('=') != std::string_view::npos) {
        return base::invalid_argument(
            "`{}`: expected a file named after an environment variable (non-empty, without `=`)",
            tree.display(file));
    }
    if (value.find('\0') != std::string_view::npos) {
        return base::invalid_argument(
            "`{}`: the value contains a NUL byte, which no environment variable can hold",
            tree.display(file));
    }
    return base::ok();
}

std::string get(const EnvMap& env, const std::string& name) {
    auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
}

}  // namespace

base::Result<EnvAction> unsuffixed_env_action(std::string_view api) {
    auto version = parse_api_version(api);
    if (!version) {
        return std::move(version.error()).context("buildpack api");
    }
    if (!buildpack_api_supported(*version)) {
        return base::unsupported("Buildpack API {} is not supported (supported: 0.7 to 0.12)", api);
    }
    // Suffix-less meant prepend-path (<0.5) before; every supported API overrides.
    return EnvAction::Override;
}

base::Result<void> apply_env_dir(EnvMap& env, const EnvDirRef& ref, EnvAction unsuffixed,
                                 const ValueRewrite& rewrite) {
    Tree tree{ref.root_fd, ref.root_name};
    auto entries = TRY(internal::list_dir(tree, ref.dir));
    if (!entries) {
        return base::ok();
    }
    for (const auto& entry : *entries) {
        if (entry.type == EntryType::Directory) {
            continue;  // env.launch/<process>/ and the like are applied by the caller
        }
        std::string file = internal::join(ref.dir, entry.name);
        size_t dot = entry.name.find('.');
        std::string name = entry.name.substr(0, dot);
        std::string suffix = dot == std::string::npos ? "" : entry.name.substr(dot + 1);
        EnvAction action;
        if (suffix.empty() && dot == std::string::npos) {
            action = unsuffixed;
        } else if (suffix == "override") {
            action = EnvAction::Override;
        } else if (suffix == "default") {
            action = EnvAction::Default;
        } else if (suffix == "append") {
            action = EnvAction::Append;
        } else if (suffix == "prepend") {
            action = EnvAction::Prepend;
        } else {
            // `.delim` is only read by append/prepend; unknown suffixes
            // (`FOO.bar.append`, `FOO.`) are ignored as the lifecycle does.
            continue;
        }
        // A dangling symlink or a FIFO is an error, as os.ReadFile's would be.
        std::string value = TRY(internal::read_file(tree, file));
        if (rewrite) {
            value = rewrite(value);
        }
        TRY(check_variable(tree, file, name, value));
        switch (action) {
            case EnvAction::Override:
                env[name] = std::move(value);
                break;
            case EnvAction::Default:
                if (get(env, name).empty()) {
                    env[name] = std::move(value);
                }
                break;
            case EnvAction::Append:
            case EnvAction::Prepend: {
                std::string delim_file = internal::join(ref.dir, name + ".delim");
                auto delim = TRY(internal::read_optional_file(tree, delim_file));
                std::string sep = delim ? *delim : std::string();
                TRY(check_variable(tree, delim_file, name, sep));
                std::string old = get(env, name);
                env[name] = action == EnvAction::Append ? old + sep + value : value + sep + old;
                break;
            }
        }
    }
    return base::ok();
}

base::Result<void> apply_platform_env(EnvMap& env, const EnvDirRef& ref) {
    Tree tree{ref.root_fd, ref.root_name};
    auto entries = TRY(internal::list_dir(tree, ref.dir));
    if (!entries) {
        return base::ok();
    }
    for (const auto& entry : *entries) {
        if (entry.type == EntryType::Directory) {
            continue;
        }
        std::string file = internal::join(ref.dir, entry.name);
        std::string value = TRY(internal::read_file(tree, file));
        TRY(check_variable(tree, file, entry.name, value));
        if (is_path_var(entry.name)) {
            env[entry.name] = value + ":" + get(env, entry.name);
        } else {
            env[entry.name] = std::move(value);
        }
    }
    return base::ok();
}

base::Result<void> add_root_dirs(EnvMap& env, const EnvDirRef& layer, std::string_view layer_value,
                                 RootDirs which) {
    static const std::vector<std::pair<std::string_view, std::vector<std::string_view>>> kBuild = {
        {"bin", {"PATH"}},
        {"include", {"CPATH"}},
        {"lib", {"LD_LIBRARY_PATH", "LIBRARY_PATH"}},
        {"pkgconfig", {"PKG_CONFIG_PATH"}},
    };
    static const std::vector<std::pair<std::string_view, std::vector<std::string_view>>> kLaunch = {
        {"bin", {"PATH"}},
        {"lib", {"LD_LIBRARY_PATH"}},
    };
    Tree tree{layer.root_fd, layer.root_name};
    for (const auto& [sub, vars] : which == RootDirs::Build ? kBuild : kLaunch) {
        // os.Stat in the reference: anything that exists counts.
        if (TRY(internal::entry_type(tree, internal::join(layer.dir, sub))) == EntryType::Missing) {
            continue;
        }
        std::string abs = internal::join(layer_value, sub);
        for (auto var : vars) {
            std::string name(var);
            std::string old = get(env, name);
            env[name] = old.empty() ? abs : abs + ":" + old;
        }
    }
    return base::ok();
}

EnvMap filter_build_base_env(const std::vector<std::string>& list) {
    static const std::array<std::string_view, 14> kKeep = {
        "PATH",         "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH",      "PKG_CONFIG_PATH",
        "CNB_STACK_ID", "HOSTNAME",        "HOME",         "HTTP_PROXY", "http_proxy",
        "HTTPS_PROXY",  "https_proxy",     "NO_PROXY",     "no_proxy"};
    EnvMap all = env_from_list(list);
    EnvMap out;
    for (auto& [name, value] : all) {
        for (auto keep : kKeep) {
            if (keep == name) {
                out[name] = value;
            }
        }
    }
    return out;
}

EnvMap env_from_list(const std::vector<std::string>& list) {
    EnvMap env;
    for (const auto& entry : list) {
        size_t eq = entry.find('=');
        if (eq == std::string::npos) {
            env[entry] = "";
        } else {
            env[entry.substr(0, eq)] = entry.substr(eq + 1);
        }
    }
    return env;
}

std::vector<std::string> env_to_list(const EnvMap& env) {
    std::vector<std::string> out;
    out.reserve(env.size());
    for (const auto& [name, value] : env) {
        out.push_back(name + "=" + value);
    }
    return out;
}

}  // namespace locald::cnb
