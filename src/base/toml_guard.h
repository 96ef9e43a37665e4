// base/toml_guard.h — a pre-parse check for TOML text that toml++ (3.3)
// would recurse on without limit.
//
// toml++ recurses once per component of a dotted key or table header
// (`[a.b.c…]`, `a.b.c… = 1`) with no limit of its own (arrays and inline
// tables stop at 256): about 200 KB of `.b` overflows the stack and kills the
// process. Keys cannot span lines, so bounding the dots outside strings and
// comments per line bounds that depth. Every caller of toml::parse runs this
// first: buildpack files (src/cnb), locald.toml (src/config), registries
// config (src/oci).
#pragma once

#include <cstddef>
#include <string_view>

namespace locald::base {

inline constexpr size_t kTomlMaxDotsPerLine = 1024;

// The 1-based line of the first line with more than kTomlMaxDotsPerLine dots
// outside strings and comments, or 0 when there is none.
size_t toml_line_nested_too_deep(std::string_view text);

}  // namespace locald::base
