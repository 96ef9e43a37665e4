#include "cnb/internal/toml_util.h"

#include "base/toml_guard.h"

#include <sstream>

namespace locald::cnb::internal {

std::string at(std::string_view file, const toml::node& node) {
    auto line = node.source().begin.line;
    if (line > 0) {
        return fmt::format("{}:{}", file, line);
    }
    return std::string(file);
}

base::Result<toml::table> parse_toml(std::string_view text, std::string_view file) {
    if (size_t line = base::toml_line_nested_too_deep(text); line != 0) {
        return base::invalid_argument(
            "{}:{}: more than {} `.` outside strings on one line (dotted keys or table headers "
            "nested that deep are refused)",
            file, line, base::kTomlMaxDotsPerLine);
    }
    try {
        return toml::parse(text, std::string(file));
    } catch (const toml::parse_error& error) {
        const auto& where = error.source().begin;
        return base::invalid_argument("{}:{}:{}: invalid TOML: {}", file, where.line, where.column,
                                      error.description());
    }
}

base::Result<std::string> get_string(const toml::table& table, std::string_view key,
                                     std::string_view file, bool required) {
    const toml::node* node = table.get(key);
    if (node == nullptr) {
        if (required) {
            return base::invalid_argument("{}: missing `{}` (expected a string)", at(file, table),
                                          key);
        }
        return std::string();
    }
    const auto* value = node->as_string();
    if (value == nullptr) {
        return base::invalid_argument("{}: `{}` must be a string", at(file, *node), key);
    }
    return value->get();
}

base::Result<bool> get_bool(const toml::table& table, std::string_view key, std::string_view file) {
    const toml::node* node = table.get(key);
    if (node == nullptr) {
        return false;
    }
    const auto* value = node->as_boolean();
    if (value == nullptr) {
        return base::invalid_argument("{}: `{}` must be true or false", at(file, *node), key);
    }
    return value->get();
}

std::string to_toml_text(const toml::table& table) {
    std::ostringstream out;
    out << toml::toml_formatter(table);
    return out.str();
}

}  // namespace locald::cnb::internal
