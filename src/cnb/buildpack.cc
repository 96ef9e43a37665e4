#include "cnb/buildpack.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>

#include <cstdlib>

#include "base/confined.h"
#include "base/json.h"
#include "base/sys.h"
#include "cnb/internal/toml_util.h"

namespace locald::cnb {

using internal::at;
using internal::get_bool;
using internal::get_string;

base::Result<ApiVersion> parse_api_version(std::string_view text) {
    // "MAJOR.MINOR" with decimal digits only (the spec's API versions).
    size_t dot = text.find('.');
    auto digits = [](std::string_view part) {
        if (part.empty() || part.size() > 6) {
            return false;
        }
        for (char c : part) {
            if (c < '0' || c > '9') {
                return false;
            }
        }
        return true;
    };
    if (dot == std::string_view::npos || !digits(text.substr(0, dot)) ||
        !digits(text.substr(dot + 1))) {
        return base::invalid_argument(
            "`{}` is not an API version (expected MAJOR.MINOR, e.g. 0.10)", text);
    }
    return ApiVersion{std::atoi(std::string(text.substr(0, dot)).c_str()),
                      std::atoi(std::string(text.substr(dot + 1)).c_str())};
}

bool buildpack_api_supported(ApiVersion api) {
    return api >= ApiVersion{0, 7} && api <= ApiVersion{0, 12};
}

base::Result<void> validate_id(std::string_view id) {
    if (id.empty()) {
        return base::invalid_argument("a buildpack id must not be empty");
    }
    if (id.size() > 255) {
        return base::invalid_argument("buildpack id `{}…` is longer than 255 bytes",
                                      id.substr(0, 32));
    }
    for (char c : id) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_' || c == '/';
        if (!ok) {
            return base::invalid_argument(
                "buildpack id `{}` has a character outside [A-Za-z0-9._/-]", id);
        }
    }
    size_t start = 0;
    while (start <= id.size()) {
        size_t slash = id.find('/', start);
        std::string_view part =
            id.substr(start, slash == std::string_view::npos ? id.npos : slash - start);
        if (part.empty() || part == "." || part == "..") {
            return base::invalid_argument("buildpack id `{}` has an empty, `.` or `..` component",
                                          id);
        }
        if (slash == std::string_view::npos) {
            break;
        }
        start = slash + 1;
    }
    for (std::string_view reserved : {"app", "config", "generated", "sbom"}) {
        if (id == reserved) {
            return base::invalid_argument(
                "buildpack id `{}` is reserved (it names a directory of <layers>)", id);
        }
    }
    return {};
}

base::Result<void> validate_version(std::string_view version) {
    if (version.empty() || version == "." || version == ".." ||
        version.find('/') != std::string_view::npos ||
        version.find('\0') != std::string_view::npos || version.size() > 255) {
        return base::invalid_argument(
            "buildpack version `{}` is not usable as a directory name (expected a non-empty "
            "version without `/`)",
            version);
    }
    return {};
}

std::string escape_id(std::string_view id) {
    std::string out(id);
    for (char& c : out) {
        if (c == '/') {
            c = '_';
        }
    }
    return out;
}

std::vector<Target> BuildpackDescriptor::effective_targets() const {
    if (!targets.empty()) {
        return targets;
    }
    std::vector<Target> out;
    for (const std::string& stack : stacks) {
        if (stack == "*") {
            out.push_back(Target{});
        } else if (stack == "io.buildpacks.stacks.bionic" &&
                   (api_version >= ApiVersion{0, 10} || stacks.size() == 1)) {
            out.push_back(Target{"linux", "amd64", "", {{"ubuntu", "18.04"}}});
        }
    }
    if (out.empty() && has_bin_build) {
        out.push_back(Target{"linux", "", "", {}});
    }
    return out;
}

namespace {

base::Result<Group> parse_group(const toml::array& group, std::string_view file,
                                std::string_view where) {
    Group out;
    for (const toml::node& node : group) {
        const toml::table* entry = node.as_table();
        if (entry == nullptr) {
            return base::invalid_argument("{}: {}: expected a table of id, version, optional",
                                          at(file, node), where);
        }
        GroupRef ref;
        ref.id = TRY(get_string(*entry, "id", file, true));
        ref.version = TRY(get_string(*entry, "version", file, false));
        ref.optional = TRY(get_bool(*entry, "optional", file));
        if (auto valid = validate_id(ref.id); !valid) {
            return base::invalid_argument("{}: {}", at(file, *entry), valid.error().message());
        }
        if (ref.version.empty()) {
            return base::invalid_argument(
                "{}: buildpack `{}` has no version (expected a concrete version)", at(file, *entry),
                ref.id);
        }
        if (auto valid = validate_version(ref.version); !valid) {
            return base::invalid_argument("{}: {}", at(file, *entry), valid.error().message());
        }
        out.push_back(std::move(ref));
    }
    return out;
}

// `[[order]] [[order.group]]` as found in order.toml and composite buildpack.toml.
base::Result<Order> parse_order_array(const toml::node& node, std::string_view file) {
    const toml::array* order = node.as_array();
    if (order == nullptr) {
        return base::invalid_argument("{}: `order` must be an array of tables ([[order]])",
                                      at(file, node));
    }
    Order out;
    for (const toml::node& element : *order) {
        const toml::table* table = element.as_table();
        if (table == nullptr) {
            return base::invalid_argument("{}: each [[order]] must be a table", at(file, element));
        }
        const toml::node* group = table->get("group");
        if (group == nullptr || !group->is_array()) {
            return base::invalid_argument("{}: [[order]] needs [[order.group]] entries",
                                          at(file, *table));
        }
        out.push_back(TRY(parse_group(*group->as_array(), file, "[[order.group]]")));
        if (out.back().empty()) {
            return base::invalid_argument("{}: an [[order]] group must not be empty",
                                          at(file, *table));
        }
    }
    return out;
}

base::Result<Target> parse_target(const toml::table& table, std::string_view file) {
    Target target;
    target.os = TRY(get_string(table, "os", file, false));
    target.arch = TRY(get_string(table, "arch", file, false));
    target.variant = TRY(get_string(table, "variant", file, false));
    if (const toml::node* distros = table.get("distros")) {
        const toml::array* list = distros->as_array();
        if (list == nullptr) {
            return base::invalid_argument("{}: `distros` must be an array of tables",
                                          at(file, *distros));
        }
        for (const toml::node& item : *list) {
            const toml::table* distro = item.as_table();
            if (distro == nullptr) {
                return base::invalid_argument("{}: each [[targets.distros]] must be a table",
                                              at(file, item));
            }
            target.distros.push_back({TRY(get_string(*distro, "name", file, false)),
                                      TRY(get_string(*distro, "version", file, false))});
        }
    }
    return target;
}

}  // namespace

base::Result<BuildpackDescriptor> parse_buildpack_toml(std::string_view text,
                                                       std::string_view file) {
    toml::table root = TRY(internal::parse_toml(text, file));
    BuildpackDescriptor bp;
    bp.api = TRY(get_string(root, "api", file, true));
    auto api = parse_api_version(bp.api);
    if (!api) {
        return base::invalid_argument("{}: `api`: {}", at(file, *root.get("api")),
                                      api.error().message());
    }
    bp.api_version = *api;
    const toml::node* section = root.get("buildpack");
    if (section == nullptr || !section->is_table()) {
        return base::invalid_argument("{}: expected a [buildpack] table with id and version", file);
    }
    const toml::table& info = *section->as_table();
    bp.id = TRY(get_string(info, "id", file, true));
    bp.version = TRY(get_string(info, "version", file, true));
    bp.name = TRY(get_string(info, "name", file, false));
    bp.homepage = TRY(get_string(info, "homepage", file, false));
    bp.clear_env = TRY(get_bool(info, "clear-env", file));
    if (auto valid = validate_id(bp.id); !valid) {
        return base::invalid_argument("{}: {}", at(file, info), valid.error().message());
    }
    if (auto valid = validate_version(bp.version); !valid) {
        return base::invalid_argument("{}: {}", at(file, info), valid.error().message());
    }
    if (const toml::node* targets = root.get("targets")) {
        const toml::array* list = targets->as_array();
        if (list == nullptr) {
            return base::invalid_argument("{}: `targets` must be an array of tables ([[targets]])",
                                          at(file, *targets));
        }
        for (const toml::node& item : *list) {
            if (!item.is_table()) {
                return base::invalid_argument("{}: each [[targets]] must be a table",
                                              at(file, item));
            }
            bp.targets.push_back(TRY(parse_target(*item.as_table(), file)));
        }
    }
    if (const toml::node* stacks = root.get("stacks")) {
        const toml::array* list = stacks->as_array();
        if (list == nullptr) {
            return base::invalid_argument("{}: `stacks` must be an array of tables ([[stacks]])",
                                          at(file, *stacks));
        }
        for (const toml::node& item : *list) {
            if (!item.is_table()) {
                return base::invalid_argument("{}: each [[stacks]] must be a table",
                                              at(file, item));
            }
            bp.stacks.push_back(TRY(get_string(*item.as_table(), "id", file, true)));
        }
    }
    if (const toml::node* order = root.get("order")) {
        bp.order = TRY(parse_order_array(*order, file));
    }
    return bp;
}

base::Result<Order> parse_order_toml(std::string_view text, std::string_view file) {
    toml::table root = TRY(internal::parse_toml(text, file));
    if (const toml::node* extensions = root.get("order-extensions")) {
        return base::unsupported(
            "{}: [[order-extensions]] (image extensions) are not supported by locald",
            at(file, *extensions));
    }
    const toml::node* order = root.get("order");
    if (order == nullptr) {
        return base::invalid_argument(
            "{}: expected [[order]] groups of [[order.group]] id, version", file);
    }
    Order out = TRY(parse_order_array(*order, file));
    if (out.empty()) {
        return base::invalid_argument("{}: [[order]] is empty", file);
    }
    return out;
}

base::Result<SystemBuildpacks> parse_system_toml(std::string_view text, std::string_view file) {
    toml::table root = TRY(internal::parse_toml(text, file));
    SystemBuildpacks out;
    const toml::node* system = root.get("system");
    if (system == nullptr) {
        return out;
    }
    if (!system->is_table()) {
        return base::invalid_argument("{}: `system` must be a table ([system.pre], [system.post])",
                                      at(file, *system));
    }
    for (const char* phase : {"pre", "post"}) {
        const toml::node* node = system->as_table()->get(phase);
        if (node == nullptr) {
            continue;
        }
        const toml::table* table = node->as_table();
        if (table == nullptr) {
            return base::invalid_argument("{}: `system.{}` must be a table", at(file, *node),
                                          phase);
        }
        const toml::node* buildpacks = table->get("buildpacks");
        if (buildpacks == nullptr) {
            continue;
        }
        if (!buildpacks->is_array()) {
            return base::invalid_argument(
                "{}: `system.{}.buildpacks` must be an array of tables ([[system.{}.buildpacks]])",
                at(file, *buildpacks), phase, phase);
        }
        Group group = TRY(parse_group(*buildpacks->as_array(), file,
                                      fmt::format("[[system.{}.buildpacks]]", phase)));
        (std::string_view(phase) == "pre" ? out.pre : out.post) = std::move(group);
    }
    return out;
}

Order merge_system_buildpacks(const Order& order, const SystemBuildpacks& system) {
    Order out;
    for (const Group& group : order) {
        auto has = [&](const std::string& id) {
            for (const GroupRef& ref : group) {
                if (ref.id == id) {
                    return true;
                }
            }
            return false;
        };
        Group merged;
        for (const GroupRef& ref : system.pre) {
            if (!has(ref.id)) {
                merged.push_back(ref);
            }
        }
        merged.insert(merged.end(), group.begin(), group.end());
        for (const GroupRef& ref : system.post) {
            if (!has(ref.id)) {
                merged.push_back(ref);
            }
        }
        out.push_back(std::move(merged));
    }
    return out;
}

namespace {

base::Result<RunImageRef> parse_run_image(const base::Json& json, std::string_view where) {
    if (!json.is_object()) {
        return base::invalid_argument("{}: expected an object with image and mirrors", where);
    }
    RunImageRef ref;
    auto image = json.get_string("image");
    if (!image) {
        return base::invalid_argument("{}: {}", where, image.error().message());
    }
    ref.image = *image;
    if (const base::Json* mirrors = json.find("mirrors")) {
        if (!mirrors->is_array() && !mirrors->is_null()) {
            return base::invalid_argument("{}: `mirrors` must be an array of strings", where);
        }
        if (mirrors->is_array()) {
            for (const base::Json& mirror : mirrors->as_array()) {
                if (!mirror.is_string()) {
                    return base::invalid_argument("{}: `mirrors` must be an array of strings",
                                                  where);
                }
                ref.mirrors.push_back(mirror.as_string());
            }
        }
    }
    return ref;
}

base::Result<uint32_t> parse_id_env(std::string_view name, const std::string& value) {
    if (value.empty() || value.size() > 10 ||
        value.find_first_not_of("0123456789") != std::string::npos) {
        return base::invalid_argument("builder image env {}=`{}`: expected a numeric id", name,
                                      value);
    }
    unsigned long long id = std::strtoull(value.c_str(), nullptr, 10);
    if (id > 0xfffffffeULL) {
        return base::invalid_argument("builder image env {}=`{}`: out of range", name, value);
    }
    return static_cast<uint32_t>(id);
}

}  // namespace

base::Result<BuilderInfo> parse_builder_config(const std::map<std::string, std::string>& labels,
                                               const std::vector<std::string>& env) {
    BuilderInfo info;
    std::optional<std::string> uid, gid;
    for (const std::string& entry : env) {
        size_t eq = entry.find('=');
        std::string_view key = std::string_view(entry).substr(0, eq);
        std::string value = eq == std::string::npos ? "" : entry.substr(eq + 1);
        if (key == "CNB_USER_ID") {
            uid = value;
        } else if (key == "CNB_GROUP_ID") {
            gid = value;
        } else if (key == "CNB_STACK_ID") {
            info.stack_id = value;
        }
    }
    if (!uid || !gid) {
        return base::invalid_argument(
            "builder image config: CNB_USER_ID and CNB_GROUP_ID must both be set in its Env "
            "(the build user's uid and gid)");
    }
    info.uid = TRY(parse_id_env("CNB_USER_ID", *uid));
    info.gid = TRY(parse_id_env("CNB_GROUP_ID", *gid));
    if (info.uid == 0) {
        return base::invalid_argument(
            "builder image config: CNB_USER_ID=0: buildpacks must not run as root");
    }
    if (info.stack_id.empty()) {
        if (auto it = labels.find("io.buildpacks.stack.id"); it != labels.end()) {
            info.stack_id = it->second;
        }
    }
    constexpr std::string_view kLabel = "io.buildpacks.builder.metadata";
    auto label = labels.find(std::string(kLabel));
    if (label == labels.end()) {
        return base::invalid_argument("builder image has no `{}` label: not a buildpacks builder",
                                      kLabel);
    }
    auto parsed = base::Json::parse(label->second, {.max_bytes = 4 << 20, .max_depth = 32});
    if (!parsed) {
        return base::invalid_argument("label `{}`: {}", kLabel, parsed.error().message());
    }
    const base::Json& meta = *parsed;
    if (!meta.is_object()) {
        return base::invalid_argument("label `{}`: expected a JSON object", kLabel);
    }
    if (const base::Json* description = meta.find("description"); description != nullptr) {
        if (!description->is_string()) {
            return base::invalid_argument("label `{}`: `description` must be a string", kLabel);
        }
        info.description = description->as_string();
    }
    if (const base::Json* buildpacks = meta.find("buildpacks"); buildpacks != nullptr) {
        if (!buildpacks->is_array()) {
            return base::invalid_argument("label `{}`: `buildpacks` must be an array", kLabel);
        }
        for (const base::Json& bp : buildpacks->as_array()) {
            auto id = bp.get_string("id");
            auto version = bp.get_string("version");
            if (!id || !version) {
                return base::invalid_argument(
                    "label `{}`: each of `buildpacks` needs string id and version", kLabel);
            }
            info.buildpacks.emplace_back(*id, *version);
        }
    }
    if (const base::Json* images = meta.find("images"); images != nullptr && !images->is_null()) {
        if (!images->is_array()) {
            return base::invalid_argument("label `{}`: `images` must be an array", kLabel);
        }
        for (const base::Json& image : images->as_array()) {
            info.run_images.push_back(
                TRY(parse_run_image(image, fmt::format("label `{}`: images[]", kLabel))));
        }
    }
    if (info.run_images.empty()) {
        if (const base::Json* stack = meta.find("stack"); stack != nullptr && stack->is_object()) {
            if (const base::Json* run = stack->find("runImage"); run != nullptr) {
                info.run_images.push_back(
                    TRY(parse_run_image(*run, fmt::format("label `{}`: stack.runImage", kLabel))));
            }
        }
    }
    if (const base::Json* lifecycle = meta.find("lifecycle"); lifecycle != nullptr) {
        if (lifecycle->is_object()) {
            if (auto version = lifecycle->get_string("version")) {
                info.lifecycle_version = *version;
            }
        }
    }
    return info;
}

namespace {

// The value of KEY=value / KEY="value" in os-release(5) text, "" if absent.
std::string os_release_value(std::string_view text, std::string_view key) {
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        std::string_view line =
            text.substr(start, end == std::string_view::npos ? text.npos : end - start);
        start = end == std::string_view::npos ? text.size() : end + 1;
        if (line.size() > key.size() && line.substr(0, key.size()) == key &&
            line[key.size()] == '=') {
            std::string_view value = line.substr(key.size() + 1);
            if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
                value.back() == value.front()) {
                value = value.substr(1, value.size() - 2);
            }
            return std::string(value);
        }
    }
    return "";
}

}  // namespace

Target run_image_target(std::string_view os, std::string_view arch, std::string_view variant,
                        const std::map<std::string, std::string>& labels,
                        std::string_view os_release) {
    Target target{std::string(os), std::string(arch), std::string(variant), {}};
    Distro distro;
    if (auto it = labels.find("io.buildpacks.base.distro.name"); it != labels.end()) {
        distro.name = it->second;
    }
    if (auto it = labels.find("io.buildpacks.base.distro.version"); it != labels.end()) {
        distro.version = it->second;
    }
    if (distro.name.empty() && distro.version.empty() && !os_release.empty()) {
        distro.name = os_release_value(os_release, "ID");
        distro.version = os_release_value(os_release, "VERSION_ID");
    }
    if (!distro.name.empty() || !distro.version.empty()) {
        target.distros.push_back(std::move(distro));
    }
    return target;
}

base::Result<std::string> read_file_in_root(int rootfs_fd, std::string_view path,
                                            size_t max_bytes) {
    auto fd = base::open_in_root(rootfs_fd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
    if (!fd) {
        return std::move(fd.error()).context(fmt::format("opening `{}` in the builder", path));
    }
    struct stat st;
    if (::fstat(fd->get(), &st) != 0) {
        return base::errno_error("fstat `{}`", path);
    }
    if (!S_ISREG(st.st_mode)) {
        return base::invalid_argument("`{}` in the builder is not a regular file", path);
    }
    if (static_cast<uint64_t>(st.st_size) > max_bytes) {
        return base::invalid_argument("`{}` in the builder is larger than {} bytes", path,
                                      max_bytes);
    }
    // Regular: a read never waits (the open was non-blocking against FIFOs).
    return base::read_all(fd->get(), max_bytes)
        .context(fmt::format("reading `{}` in the builder", path));
}

base::Result<BuildpackDescriptor> load_buildpack(int rootfs_fd, std::string_view id,
                                                 std::string_view version) {
    TRY(validate_id(id));
    TRY(validate_version(version));
    std::string dir = fmt::format("/cnb/buildpacks/{}/{}", escape_id(id), version);
    std::string file = dir + "/buildpack.toml";
    auto text = read_file_in_root(rootfs_fd, file);
    if (!text) {
        return std::move(text.error())
            .context(fmt::format("buildpack `{}@{}` is not in the builder", id, version));
    }
    BuildpackDescriptor bp = TRY(parse_buildpack_toml(*text, file));
    if (bp.id != id || bp.version != version) {
        return base::invalid_argument("{}: declares `{}@{}`, expected `{}@{}` (its directory)",
                                      file, bp.id, bp.version, id, version);
    }
    if (!buildpack_api_supported(bp.api_version)) {
        return base::unsupported(
            "{}: Buildpack API {} is not supported (locald supports 0.7 to 0.12)", file, bp.api);
    }
    bp.dir = dir;
    auto build = base::open_in_root(rootfs_fd, dir + "/bin/build", O_PATH);
    bp.has_bin_build = static_cast<bool>(build);
    return bp;
}

base::Result<Order> load_order(int rootfs_fd, std::string_view path) {
    std::string text = TRY(read_file_in_root(rootfs_fd, path));
    return parse_order_toml(text, path);
}

}  // namespace locald::cnb
