// bench/ns/slim_launch.cc — measurement aid, not a product binary: the same
// launcher (`ns::Launcher::run` from a JSON spec, like `locald __launch`)
// linked with base + ns only, to show how much of locald's start latency is
// the full binary's dynamic loading. Built by bench/ns/start.sh.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "base/json.h"
#include "ns/launcher.h"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: slim_launch SPEC.json\n");
        return 2;
    }
    std::ifstream in(argv[1]);
    std::stringstream text;
    text << in.rdbuf();
    auto json = locald::base::Json::parse(text.str());
    if (!json) {
        std::fprintf(stderr, "%s\n", json.error().to_string().c_str());
        return 2;
    }
    auto spec = locald::ns::spec_from_json(*json);
    if (!spec) {
        std::fprintf(stderr, "%s\n", spec.error().to_string().c_str());
        return 2;
    }
    auto status = locald::ns::Launcher::run(*spec);
    if (!status) {
        std::fprintf(stderr, "%s\n", status.error().to_string().c_str());
        return 125;
    }
    return *status;
}
