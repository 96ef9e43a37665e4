// fuzz/config_dotenv_fuzz.cc — the `.env` dialect (config/dotenv.h):
// quotes spanning lines, escapes, `${VAR:-default}` interpolation, BOM/CRLF.
// Errors must name `file:line`.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "config/dotenv.h"

using namespace locald;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    static const config::Environment environment = {{"HOME", "/home/u"}, {"EMPTY", ""}};
    auto entries = config::parse_dotenv(text, "/project/.env", environment);
    if (!entries) {
        if (entries.error().message().find("/project/.env") == std::string::npos) {
            fprintf(stderr, "error does not name the file: %s\n",
                    entries.error().message().c_str());
            abort();
        }
        return 0;
    }
    for (const auto& entry : *entries) {
        if (entry.key.empty()) {
            abort();
        }
    }
    return 0;
}
