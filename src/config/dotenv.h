// config/dotenv.h — the `.env` dialect (../shared/design/config.md, "`.env` dialect").
//
// `KEY=value` lines with an optional `export ` prefix; unquoted values are
// trimmed and end at a ` #` comment; 'single' quotes are literal; "double"
// quotes take escapes (\n \r \t \" \\ \$); both quote kinds may span lines.
// Unquoted and double-quoted values interpolate `${VAR}`, `${VAR:-default}` and
// `$VAR` from earlier keys of the same file, then `environment` (unset → empty);
// `$(...)` is kept literally, never executed. A UTF-8 BOM and CRLF line ends
// are accepted. Any line that cannot be parsed is an error naming `file:line`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "config/spec.h"

namespace locald::config {

// Parses `text` (the contents of `file`). Entries come back in file order, one
// per assignment (a later duplicate follows an earlier one: last wins when
// layered). Each entry's origin is `origin` and its location is `file:line` of
// the line the key is on.
base::Result<std::vector<EnvEntry>> parse_dotenv(std::string_view text, const std::string& file,
                                                 const Environment& environment,
                                                 EnvOrigin origin = EnvOrigin::DotEnv);

}  // namespace locald::config
