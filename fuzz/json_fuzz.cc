// fuzz/json_fuzz.cc — base::Json::parse on arbitrary bytes.
//
// Properties checked beyond "no crash, no sanitizer report": a parsed value
// dumps to text that parses back to an equal value (compact and pretty).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "base/json.h"

using locald::base::Json;
using locald::base::JsonParseOptions;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    JsonParseOptions options;
    options.max_depth = 64;
    auto parsed = Json::parse(text, options);
    if (!parsed) {
        if (parsed.error().message().empty()) {
            abort();  // an error must say what was expected
        }
        return 0;
    }
    for (bool pretty : {false, true}) {
        std::string dumped = parsed->dump(pretty);
        auto again = Json::parse(dumped, options);
        if (!again) {
            fprintf(stderr, "dump() output does not parse: %s\n%s\n",
                    again.error().message().c_str(), dumped.c_str());
            abort();
        }
        // Doubles may lose their last bit through text: compare the dumps.
        if (again->dump(pretty) != dumped) {
            fprintf(stderr, "round trip changed the value:\n%s\n%s\n", dumped.c_str(),
                    again->dump(pretty).c_str());
            abort();
        }
    }
    // The checked accessors on whatever came back.
    if (parsed->is_object()) {
        for (const auto& [key, value] : parsed->as_object()) {
            (void)parsed->get_string(key);
            (void)parsed->get_int(key);
            (void)parsed->get_double(key);
            (void)parsed->get_bool(key);
            (void)parsed->get_object(key);
            (void)parsed->get_array(key);
            (void)value.size();
        }
    }
    return 0;
}
