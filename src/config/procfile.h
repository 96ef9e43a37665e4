// config/procfile.h — the Procfile dialect (../shared/design/config.md, "Procfile").
//
// One process per line, foreman's rule `^([A-Za-z0-9_-]+):[ \t]*(.+)$`; a
// trailing `\r` is stripped; blank lines and lines whose first non-blank
// character is `#` are ignored. Any other line that does not match, a
// whitespace-only command, or a duplicate name is an error naming `file:line`.
// The command is kept verbatim (it runs under `/bin/sh -c`).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace locald::config {

struct ProcfileEntry {
    std::string name;
    std::string command;
    int line = 0;
};

base::Result<std::vector<ProcfileEntry>> parse_procfile(std::string_view text,
                                                        const std::string& file);

}  // namespace locald::config
