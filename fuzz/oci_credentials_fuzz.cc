// fuzz/oci_credentials_fuzz.cc — registry credential files (auth.json,
// Docker's config.json `auths`): key normalisation, `auth` base64, the
// most-specific-key lookup. The input is written to a file used as
// $REGISTRY_AUTH_FILE; no credential helper is ever run (those come only
// from the Docker config file, which stays unset here).
#include <fcntl.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "base/atomic_file.h"
#include "common.h"
#include "oci/credentials.h"

using namespace locald;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string path = locald_fuzz::scratch_dir("credentials") + "/auth.json";
    {
        auto fd = base::open_file(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (!fd || !base::write_all(fd->get(),
                                    std::string_view(reinterpret_cast<const char*>(data), size))) {
            abort();
        }
    }
    oci::CredentialSources sources;
    sources.registry_auth_file = path;
    for (auto [registry, repository] :
         {std::pair{"docker.io", "library/alpine"}, std::pair{"localhost:5000", "team/app/web"},
          std::pair{"registry.example.com", ""}}) {
        auto found = oci::lookup_credentials(sources, registry, repository);
        if (!found && found.error().message().empty()) {
            abort();
        }
    }
    return 0;
}
