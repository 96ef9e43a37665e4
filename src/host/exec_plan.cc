#include "host/exec_plan.h"

namespace locald::host {

const std::string* find_env(const std::vector<std::string>& env, std::string_view key) {
    const std::string* found = nullptr;
    for (const auto& entry : env) {
        if (entry.size() > key.size() && entry[key.size()] == '=' &&
            std::string_view(entry).substr(0, key.size()) == key) {
            found = &entry;  // last one wins, like a shell's export order
        }
    }
    return found;
}

}  // namespace locald::host
