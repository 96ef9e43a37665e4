// fuzz/config_procfile_fuzz.cc — Procfile parsing (config/procfile.h).
// Errors must name the file. The same bytes also go through the small value
// grammars of locald.toml (durations, which must print back to themselves,
// signals, memory sizes).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "config/procfile.h"
#include "config/values.h"

using namespace locald;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto entries = config::parse_procfile(text, "/project/Procfile");
    if (!entries) {
        if (entries.error().message().find("/project/Procfile") == std::string::npos) {
            fprintf(stderr, "error does not name the file: %s\n",
                    entries.error().message().c_str());
            abort();
        }
    }
    // The small value grammars of locald.toml on the same bytes.
    if (auto duration = config::parse_duration(text)) {
        // What `locald config` prints must read back as the same duration.
        std::string printed = config::format_duration(*duration);
        auto again = config::parse_duration(printed);
        if (!again || *again != *duration) {
            fprintf(stderr, "format_duration(%s) = %s does not parse back\n",
                    std::string(text).c_str(), printed.c_str());
            abort();
        }
    }
    (void)config::parse_signal(text);
    (void)config::parse_memory(text);
    return 0;
}
