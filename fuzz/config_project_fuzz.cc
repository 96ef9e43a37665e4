// fuzz/config_project_fuzz.cc — a whole project directory through
// config::load_project: locald.toml, Procfile and .env together (Procfile
// merge, env layering, dependency checks), then what `locald config` and
// `locald env` compute from the result (start order, injected and layered
// environments, JSON and text rendering).
//
// Input: up to three sections separated by a line `====`: locald.toml,
// Procfile, .env (an absent or empty section: no such file). The files are
// written into a scratch project directory per input. env_file entries and
// workdirs name paths relative to it; a file they name outside it is only
// read, never written.
#include <fcntl.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "base/json.h"
#include "common.h"
#include "config/render.h"
#include "config/spec.h"

using namespace locald;

namespace {

std::vector<std::string> split_sections(std::string_view text) {
    std::vector<std::string> out;
    constexpr std::string_view kSeparator = "\n====\n";
    size_t start = 0;
    while (out.size() < 2) {
        size_t at = text.find(kSeparator, start);
        if (at == std::string_view::npos) {
            break;
        }
        out.emplace_back(text.substr(start, at - start));
        start = at + kSeparator.size();
    }
    out.emplace_back(text.substr(start));
    return out;
}

void write_or_remove(const std::string& path, const std::string* content) {
    (void)base::remove_all(path);
    if (content == nullptr || content->empty()) {
        return;
    }
    auto fd = base::open_file(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (!fd || !base::write_all(fd->get(), *content)) {
        abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto sections = split_sections(std::string_view(reinterpret_cast<const char*>(data), size));
    std::string dir = locald_fuzz::scratch_dir("project") + "/shop";
    (void)base::mkdir_p(dir, 0700);
    write_or_remove(dir + "/locald.toml", sections.size() > 0 ? &sections[0] : nullptr);
    write_or_remove(dir + "/Procfile", sections.size() > 1 ? &sections[1] : nullptr);
    write_or_remove(dir + "/.env", sections.size() > 2 ? &sections[2] : nullptr);

    static const config::Environment environment = {{"HOME", "/home/u"}, {"PATH", "/bin"}};
    auto project = config::load_project(dir, environment);
    if (!project) {
        if (project.error().message().empty()) {
            abort();
        }
        return 0;
    }
    auto order = config::start_order(*project);
    if (order.size() != project->services.size()) {
        fprintf(stderr, "start_order lists %zu of %zu services\n", order.size(),
                project->services.size());
        abort();
    }
    std::map<std::string, std::uint16_t> ports;
    std::uint16_t next = 20000;
    for (const auto& service : project->services) {
        ports[service.name] = next++;
    }
    for (const auto& service : project->services) {
        auto injected = config::injected_env(*project, service, ports, "/run/notify");
        auto env = config::service_env(*project, service, environment, injected);
        (void)config::render_env(env, true);
        (void)config::unassigned_port_keys(*project, service, {});
        (void)config::to_json(service);
    }
    // What `locald config --json` prints must be valid JSON.
    std::string json = config::to_json(*project).dump(true);
    if (!base::Json::parse(json)) {
        fprintf(stderr, "to_json output does not parse:\n%s\n", json.c_str());
        abort();
    }
    (void)config::render_text(*project);
    return 0;
}
