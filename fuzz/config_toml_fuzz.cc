// fuzz/config_toml_fuzz.cc — TOML documents: a project's locald.toml
// (config/internal/toml_loader.h, the whole validation) and the registry
// part of `<config>/config.toml` (oci/registry_config.h). toml++ throws;
// both loaders must contain that and return an error with a message.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/internal/toml_loader.h"
#include "oci/registry_config.h"

using namespace locald;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto project = config::internal::parse_locald_toml(text, "/project/locald.toml", "/project");
    if (!project && project.error().message().empty()) {
        abort();
    }
    auto registries = oci::RegistryConfig::parse(text, "/nonexistent-locald-fuzz");
    if (!registries && registries.error().message().empty()) {
        abort();
    }
    if (registries) {
        (void)registries->match("docker.io/library/alpine");
        (void)registries->allows_plain_http("example.com:5000");
    }
    return 0;
}
