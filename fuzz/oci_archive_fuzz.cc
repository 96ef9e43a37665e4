// fuzz/oci_archive_fuzz.cc — `docker save` archives (oci/internal/docker_archive.h):
// manifest.json, `repositories` and the config they point at.
//
// Input: up to three sections separated by a line `====`:
// manifest.json, then `repositories` (absent: no such member), then the
// config (absent: a valid one-layer config). Members whose name ends in
// `.tar` are an empty layer (whose sha256 is the default config's diff_id);
// every other name is the config. The store is recreated per input so runs
// are reproducible.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common.h"
#include "oci/internal/docker_archive.h"
#include "oci/store.h"

using namespace locald;

namespace {

constexpr std::string_view kDefaultConfig =
    R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":)"
    R"(["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}})";

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto sections = split_sections(std::string_view(reinterpret_cast<const char*>(data), size));
    std::string config = sections.size() > 2 ? sections[2] : std::string(kDefaultConfig);
    std::string dir = locald_fuzz::scratch_dir("archive") + "/data";
    (void)base::remove_all(dir);
    auto store = oci::ContentStore::open(dir);
    if (!store) {
        fprintf(stderr, "store: %s\n", store.error().message().c_str());
        abort();
    }
    oci::internal::MemberOpener opener =
        [&](const std::string& name) -> base::Result<base::UniqueFd> {
        if (name == "manifest.json") {
            return locald_fuzz::memfd_with(sections[0]);
        }
        if (name == "repositories") {
            if (sections.size() < 2) {
                return base::not_found("no member `repositories`");
            }
            return locald_fuzz::memfd_with(sections[1]);
        }
        if (name.ends_with(".tar")) {
            return locald_fuzz::memfd_with("");
        }
        return locald_fuzz::memfd_with(config);
    };
    auto imported = oci::internal::import_docker_archive(*store, opener, "fuzz.tar");
    if (!imported && imported.error().message().empty()) {
        abort();
    }
    if (getenv("LOCALD_FUZZ_VERBOSE") != nullptr) {
        fprintf(stderr, "%s\n",
                imported ? fmt::format("ok, {} images", imported->size()).c_str()
                         : imported.error().message().c_str());
    }
    return 0;
}
