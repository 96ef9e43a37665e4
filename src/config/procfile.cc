#include "config/procfile.h"

#include <map>

#include "config/values.h"

namespace locald::config {

base::Result<std::vector<ProcfileEntry>> parse_procfile(std::string_view text,
                                                        const std::string& file) {
    if (text.find('\0') != std::string_view::npos) {
        return base::invalid_argument("{}: not a text file (it contains a NUL byte)", file);
    }
    if (text.starts_with("\xEF\xBB\xBF")) {
        text.remove_prefix(3);
    }
    std::vector<ProcfileEntry> entries;
    std::map<std::string, int, std::less<>> first_line;
    int number = 0;
    while (!text.empty()) {
        ++number;
        size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        if (line.ends_with('\r')) {
            line.remove_suffix(1);
        }
        size_t first = line.find_first_not_of(" \t");
        if (first == std::string_view::npos || line[first] == '#') {
            continue;
        }
        size_t colon = line.find(':');
        std::string_view name = line.substr(0, colon);
        if (colon == std::string_view::npos || !is_valid_service_name(name)) {
            return base::invalid_argument(
                "{}:{}: expected `NAME: command` (NAME matches [A-Za-z0-9_-]+), found `{}`", file,
                number, line);
        }
        std::string_view command = line.substr(colon + 1);
        size_t start = command.find_first_not_of(" \t");
        if (start == std::string_view::npos) {
            return base::invalid_argument("{}:{}: process `{}` has no command", file, number, name);
        }
        command.remove_prefix(start);
        auto [it, inserted] = first_line.emplace(std::string(name), number);
        if (!inserted) {
            return base::invalid_argument(
                "{}:{}: duplicate process `{}` (first defined on line {})", file, number, name,
                it->second);
        }
        entries.push_back(ProcfileEntry{std::string(name), std::string(command), number});
    }
    return entries;
}

}  // namespace locald::config
