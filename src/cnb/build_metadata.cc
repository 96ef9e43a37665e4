#include "cnb/build_metadata.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "cnb/internal/toml_util.h"

namespace locald::cnb {

namespace {

using internal::at;
using internal::get_bool;
using internal::get_string;
using internal::parse_toml;

std::string_view type_word(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::string:
            return "string";
        case toml::node_type::integer:
            return "integer";
        case toml::node_type::floating_point:
            return "float";
        case toml::node_type::boolean:
            return "boolean";
        case toml::node_type::array:
            return "array";
        case toml::node_type::table:
            return "table";
        default:
            return "date/time";
    }
}

// The string array at `key` (absent → empty).
base::Result<std::vector<std::string>> get_strings(const toml::table& table, std::string_view key,
                                                   std::string_view file, std::string_view where) {
    const toml::node* node = table.get(key);
    std::vector<std::string> out;
    if (node == nullptr) {
        return out;
    }
    const toml::array* array = node->as_array();
    if (array == nullptr) {
        return base::invalid_argument("{}: {}`{}`: expected an array of strings", at(file, *node),
                                      where, key);
    }
    for (const toml::node& element : *array) {
        const auto* value = element.as_string();
        if (value == nullptr) {
            return base::invalid_argument("{}: {}`{}`: expected an array of strings, found a {}",
                                          at(file, element), where, key, type_word(element));
        }
        out.push_back(value->get());
    }
    return out;
}

// The array of tables at `key` (absent → empty).
base::Result<std::vector<const toml::table*>> get_tables(const toml::table& root,
                                                         std::string_view key,
                                                         std::string_view file) {
    std::vector<const toml::table*> out;
    const toml::node* node = root.get(key);
    if (node == nullptr) {
        return out;
    }
    const toml::array* array = node->as_array();
    if (array == nullptr) {
        return base::invalid_argument("{}: `{}`: expected an array of tables ([[{}]])",
                                      at(file, *node), key, key);
    }
    for (const toml::node& element : *array) {
        const toml::table* table = element.as_table();
        if (table == nullptr) {
            return base::invalid_argument("{}: `{}`: expected an array of tables ([[{}]])",
                                          at(file, element), key, key);
        }
        out.push_back(table);
    }
    return out;
}

// The [metadata] table as TOML text.
base::Result<std::string> metadata_text(const toml::table& root, std::string_view file) {
    const toml::node* node = root.get("metadata");
    if (node == nullptr) {
        return std::string();
    }
    const toml::table* table = node->as_table();
    if (table == nullptr) {
        return base::invalid_argument("{}: `metadata`: expected a table", at(file, *node));
    }
    return internal::to_toml_text(*table);
}

std::string toml_string(std::string_view value) {
    std::ostringstream out;
    out << toml::value<std::string>(std::string(value));
    return out.str();
}

std::string toml_strings(const std::vector<std::string>& values) {
    std::string out = "[";
    for (size_t i = 0; i < values.size(); ++i) {
        out += (i ? ", " : "") + toml_string(values[i]);
    }
    return out + "]";
}

}  // namespace

base::Result<LayerFile> parse_layer_toml(std::string_view text, std::string_view file) {
    toml::table root = TRY(parse_toml(text, file));
    // Since Buildpack API 0.6 the flags live under [types]; a top-level one
    // is an error, not silently false (spec notes §3.3, pitfall 5).
    for (std::string_view key : {"launch", "build", "cache"}) {
        if (const toml::node* node = root.get(key)) {
            return base::invalid_argument(
                "{}: `{}` must be under [types] (e.g. `[types]\\n{} = true`), not at the top level",
                at(file, *node), key, key);
        }
    }
    LayerFile out;
    if (const toml::node* node = root.get("types")) {
        const toml::table* types = node->as_table();
        if (types == nullptr) {
            return base::invalid_argument("{}: `types`: expected a table of launch/build/cache",
                                          at(file, *node));
        }
        out.types.launch = TRY(get_bool(*types, "launch", file));
        out.types.build = TRY(get_bool(*types, "build", file));
        out.types.cache = TRY(get_bool(*types, "cache", file));
    }
    out.metadata_toml = TRY(metadata_text(root, file));
    return out;
}

base::Result<void> validate_process_type(std::string_view type) {
    if (type.empty()) {
        return base::invalid_argument("a process type must not be empty");
    }
    for (char c : type) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) {
            return base::invalid_argument(
                "process type `{}`: expected only letters, digits, `.`, `_` and `-`", type);
        }
    }
    return base::ok();
}

base::Result<LaunchFile> parse_launch_toml(std::string_view text, std::string_view file,
                                           ApiVersion api, std::string_view buildpack_id) {
    toml::table root = TRY(parse_toml(text, file));
    LaunchFile out;
    const bool modern = api >= ApiVersion{0, 9};
    int defaults = 0;
    auto processes = TRY(get_tables(root, "processes", file));
    for (size_t i = 0; i < processes.size(); ++i) {
        const toml::table& table = *processes[i];
        std::string where = fmt::format("processes[{}].", i);
        Process process;
        process.buildpack_id = std::string(buildpack_id);
        process.type = TRY(get_string(table, "type", file, true));
        auto type_ok = validate_process_type(process.type);
        if (!type_ok) {
            return base::invalid_argument("{}: {}type: {}", at(file, table), where,
                                          type_ok.error().message());
        }
        const toml::node* command = table.get("command");
        if (command == nullptr) {
            return base::invalid_argument("{}: {}command: missing (expected {})", at(file, table),
                                          where, modern ? "an array of strings" : "a string");
        }
        if (modern) {
            if (!command->is_array()) {
                return base::invalid_argument(
                    "{}: {}command: expected an array of strings (Buildpack API {}.{} ≥ 0.9), "
                    "found a {}",
                    at(file, *command), where, api.major, api.minor, type_word(*command));
            }
            process.command = TRY(get_strings(table, "command", file, where));
            if (process.command.empty()) {
                return base::invalid_argument("{}: {}command: expected at least one element",
                                              at(file, *command), where);
            }
            if (const toml::node* direct = table.get("direct")) {
                return base::invalid_argument(
                    "{}: {}direct: not allowed in Buildpack API {}.{} (every process is direct "
                    "since 0.9)",
                    at(file, *direct), where, api.major, api.minor);
            }
            process.direct = true;
        } else {
            const auto* string = command->as_string();
            if (string == nullptr) {
                return base::invalid_argument(
                    "{}: {}command: expected a string (Buildpack API {}.{} < 0.9)",
                    at(file, *command), where, api.major, api.minor);
            }
            process.command = {string->get()};
            process.direct = TRY(get_bool(table, "direct", file));
        }
        process.args = TRY(get_strings(table, "args", file, where));
        process.is_default = TRY(get_bool(table, "default", file));
        if (process.is_default) {
            ++defaults;
        }
        std::string working_dir = TRY(get_string(table, "working-dir", file, false));
        if (!working_dir.empty() && api < ApiVersion{0, 8}) {
            out.warnings.push_back(fmt::format(
                "{}: {}working-dir is ignored for Buildpack API {}.{} (supported from 0.8)",
                at(file, table), where, api.major, api.minor));
        } else {
            process.working_dir = std::move(working_dir);
        }
        if (api >= ApiVersion{0, 12}) {
            process.exec_env = TRY(get_strings(table, "exec-env", file, where));
        }
        out.processes.push_back(std::move(process));
    }
    if (defaults > 1) {
        return base::invalid_argument("{}: more than one process has `default = true`", file);
    }
    for (const toml::table* table : TRY(get_tables(root, "labels", file))) {
        Label label;
        label.key = TRY(get_string(*table, "key", file, true));
        label.value = TRY(get_string(*table, "value", file, true));
        out.labels.push_back(std::move(label));
    }
    for (const toml::table* table : TRY(get_tables(root, "slices", file))) {
        out.slices.push_back({TRY(get_strings(*table, "paths", file, "slices."))});
    }
    return out;
}

base::Result<BuildFile> parse_build_toml(std::string_view text, std::string_view file) {
    toml::table root = TRY(parse_toml(text, file));
    BuildFile out;
    for (const toml::table* table : TRY(get_tables(root, "unmet", file))) {
        std::string name = TRY(get_string(*table, "name", file, true));
        if (name.empty()) {
            return base::invalid_argument("{}: unmet: `name` must not be empty", at(file, *table));
        }
        out.unmet.push_back(std::move(name));
    }
    return out;
}

base::Result<std::string> parse_store_toml(std::string_view text, std::string_view file) {
    toml::table root = TRY(parse_toml(text, file));
    return metadata_text(root, file);
}

std::string render_metadata_toml(const BuildMetadata& metadata, ApiVersion platform_api) {
    // Written by hand (not toml++'s formatter) so the key order is the
    // spec's and stable; every string goes through toml++'s escaping.
    std::string out;
    if (!metadata.default_process.empty()) {
        out += "buildpack-default-process-type = " + toml_string(metadata.default_process) + "\n";
    }
    for (const auto& bp : metadata.buildpacks) {
        out += "\n[[buildpacks]]\n";
        out += "id = " + toml_string(bp.id) + "\n";
        out += "version = " + toml_string(bp.version) + "\n";
        out += "api = " + toml_string(bp.api) + "\n";
        if (!bp.homepage.empty()) {
            out += "homepage = " + toml_string(bp.homepage) + "\n";
        }
    }
    const bool array_command = platform_api >= ApiVersion{0, 10};
    for (const auto& process : metadata.processes) {
        out += "\n[[processes]]\n";
        out += "type = " + toml_string(process.type) + "\n";
        std::vector<std::string> args = process.args;
        if (array_command) {
            out += "command = " + toml_strings(process.command) + "\n";
        } else {
            out += "command = " + toml_string(process.command.front()) + "\n";
            args.insert(args.begin(), process.command.begin() + 1, process.command.end());
        }
        out += "args = " + toml_strings(args) + "\n";
        out += std::string("direct = ") + (process.direct ? "true" : "false") + "\n";
        out += "buildpack-id = " + toml_string(process.buildpack_id) + "\n";
        if (!process.working_dir.empty()) {
            out += "working-dir = " + toml_string(process.working_dir) + "\n";
        }
        if (!process.exec_env.empty()) {
            out += "exec-env = " + toml_strings(process.exec_env) + "\n";
        }
    }
    for (const auto& label : metadata.labels) {
        out += "\n[[labels]]\nkey = " + toml_string(label.key) +
               "\nvalue = " + toml_string(label.value) + "\n";
    }
    for (const auto& slice : metadata.slices) {
        out += "\n[[slices]]\npaths = " + toml_strings(slice.paths) + "\n";
    }
    return out;
}

base::Result<BuildMetadata> parse_metadata_toml(std::string_view text, std::string_view file) {
    toml::table root = TRY(parse_toml(text, file));
    BuildMetadata out;
    out.default_process = TRY(get_string(root, "buildpack-default-process-type", file, false));
    for (const toml::table* table : TRY(get_tables(root, "buildpacks", file))) {
        MetadataBuildpack bp;
        bp.id = TRY(get_string(*table, "id", file, true));
        bp.version = TRY(get_string(*table, "version", file, false));
        bp.api = TRY(get_string(*table, "api", file, true));
        bp.homepage = TRY(get_string(*table, "homepage", file, false));
        out.buildpacks.push_back(std::move(bp));
    }
    auto processes = TRY(get_tables(root, "processes", file));
    for (size_t i = 0; i < processes.size(); ++i) {
        const toml::table& table = *processes[i];
        std::string where = fmt::format("processes[{}].", i);
        Process process;
        process.type = TRY(get_string(table, "type", file, true));
        const toml::node* command = table.get("command");
        if (command != nullptr && command->is_string()) {
            process.command = {command->as_string()->get()};
        } else {
            process.command = TRY(get_strings(table, "command", file, where));
        }
        if (process.command.empty()) {
            return base::invalid_argument(
                "{}: {}command: expected a string or a non-empty array of strings", at(file, table),
                where);
        }
        process.args = TRY(get_strings(table, "args", file, where));
        process.direct = TRY(get_bool(table, "direct", file));
        process.buildpack_id = TRY(get_string(table, "buildpack-id", file, false));
        process.working_dir = TRY(get_string(table, "working-dir", file, false));
        process.exec_env = TRY(get_strings(table, "exec-env", file, where));
        out.processes.push_back(std::move(process));
    }
    for (const toml::table* table : TRY(get_tables(root, "labels", file))) {
        out.labels.push_back({TRY(get_string(*table, "key", file, true)),
                              TRY(get_string(*table, "value", file, true))});
    }
    for (const toml::table* table : TRY(get_tables(root, "slices", file))) {
        out.slices.push_back({TRY(get_strings(*table, "paths", file, "slices."))});
    }
    return out;
}

MergedProcesses merge_processes(const std::vector<std::vector<Process>>& per_buildpack,
                                const std::function<void(const std::string&)>& warn) {
    std::map<std::string, Process> by_type;
    std::string default_type;
    for (const auto& processes : per_buildpack) {
        for (const auto& process : processes) {
            if (process.type == default_type && !process.is_default) {
                if (warn) {
                    warn(fmt::format(
                        "buildpack `{}` redefines the default process type `{}` without "
                        "`default = true`: there is no default process any more",
                        process.buildpack_id, process.type));
                }
                default_type.clear();
            }
            if (process.is_default) {
                default_type = process.type;
            }
            by_type[process.type] = process;
        }
    }
    MergedProcesses out;
    out.default_process = default_type;
    for (auto& [type, process] : by_type) {
        process.is_default = false;
        out.processes.push_back(std::move(process));
    }
    return out;
}

}  // namespace locald::cnb
