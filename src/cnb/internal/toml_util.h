// cnb/internal/toml_util.h — toml++ helpers shared by the detection half of
// cnb (buildpack.toml, order.toml, detect plans): parse without exceptions
// escaping, and typed getters whose errors name `file:line` and the key.
// Private to src/cnb (toml++ is a private dependency).
#pragma once

#include <toml++/toml.h>

#include <string>
#include <string_view>

#include "base/error.h"

namespace locald::cnb::internal {

// "file:line" when the node has a source position, else "file".
std::string at(std::string_view file, const toml::node& node);

// Parses `text`; a syntax error names file:line:column and toml++'s words.
base::Result<toml::table> parse_toml(std::string_view text, std::string_view file);

// The string at `key`: "" when absent and not `required`; an error when
// absent and required, or not a string.
base::Result<std::string> get_string(const toml::table& table, std::string_view key,
                                     std::string_view file, bool required);
// The boolean at `key`, false when absent.
base::Result<bool> get_bool(const toml::table& table, std::string_view key, std::string_view file);

// TOML text of a table (for plan metadata carried as text), and back.
std::string to_toml_text(const toml::table& table);

}  // namespace locald::cnb::internal
