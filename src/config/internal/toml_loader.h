// config/internal/toml_loader.h — locald.toml into partly resolved specs.
//
// toml++ stays behind this header (it throws; the throw is contained in
// toml_loader.cc). The loader (loader.cc) finishes the job: Procfile merge,
// env layering, dependency checks.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "config/spec.h"

namespace locald::config::internal {

struct TomlService {
    ServiceSpec spec;                                // `env` is still empty; env_files are absolute
    std::vector<EnvEntry> env_table;                 // the service's own `env`, origin ServiceEnv
    std::vector<SourceLocation> env_file_locations;  // parallel to spec.env_files
    SourceLocation port_location;
};

struct TomlProject {
    std::optional<std::string> name;
    std::vector<EnvEntry> env;          // `[env]`, origin ProjectEnv
    std::vector<TomlService> services;  // in file order
};

// Parses and validates `text`, the contents of `file` in `project_dir`.
base::Result<TomlProject> parse_locald_toml(std::string_view text, const std::string& file,
                                            const std::string& project_dir);

}  // namespace locald::config::internal
