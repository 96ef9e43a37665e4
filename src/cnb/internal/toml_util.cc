#include "cnb/internal/toml_util.h"

#include <sstream>

namespace locald::cnb::internal {

std::string at(std::string_view file, const toml::node& node) {
    auto line = node.source().begin.line;
    if (line > 0) {
        return fmt::format("{}:{}", file, line);
    }
    return std::string(file);
}

namespace {

// toml++ recurses once per component of a dotted key or table header
// (`[a.b.c…]`, `a.b.c… = 1`) with no limit of its own (arrays and inline
// tables stop at 256): 200 KB of `.b` overflows the stack. Keys cannot span
// lines, so bounding the dots outside strings and comments per line bounds
// that depth. The line of the first offender, or 0.
constexpr size_t kMaxDotsPerLine = 1024;

size_t line_with_too_many_dots(std::string_view text) {
    enum class State { Normal, Basic, Literal, MultiBasic, MultiLiteral, Comment };
    State state = State::Normal;
    size_t line = 1;
    size_t dots = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '\n') {
            ++line;
            dots = 0;
            if (state == State::Comment || state == State::Basic || state == State::Literal) {
                state = State::Normal;  // single-line ones end (or are an error toml++ reports)
            }
            continue;
        }
        switch (state) {
            case State::Normal:
                if (c == '.') {
                    if (++dots > kMaxDotsPerLine) {
                        return line;
                    }
                } else if (c == '#') {
                    state = State::Comment;
                } else if (c == '"' || c == '\'') {
                    bool multi = text.substr(i, 3) == (c == '"' ? "\"\"\"" : "'''");
                    state = c == '"' ? (multi ? State::MultiBasic : State::Basic)
                                     : (multi ? State::MultiLiteral : State::Literal);
                    if (multi) {
                        i += 2;
                    }
                }
                break;
            case State::Basic:
            case State::MultiBasic:
                if (c == '\\') {
                    if (i + 1 < text.size() && text[i + 1] != '\n') {
                        ++i;  // an escaped character (a line-ending backslash counts the \n)
                    }
                } else if (c == '"') {
                    if (state == State::Basic) {
                        state = State::Normal;
                    } else if (text.substr(i, 3) == "\"\"\"") {
                        // Up to two more quotes may belong to the content.
                        size_t end = i + 3;
                        while (end < text.size() && end < i + 5 && text[end] == '"') {
                            ++end;
                        }
                        i = end - 1;
                        state = State::Normal;
                    }
                }
                break;
            case State::Literal:
            case State::MultiLiteral:
                if (c == '\'') {
                    if (state == State::Literal) {
                        state = State::Normal;
                    } else if (text.substr(i, 3) == "'''") {
                        size_t end = i + 3;
                        while (end < text.size() && end < i + 5 && text[end] == '\'') {
                            ++end;
                        }
                        i = end - 1;
                        state = State::Normal;
                    }
                }
                break;
            case State::Comment:
                break;
        }
    }
    return 0;
}

}  // namespace

base::Result<toml::table> parse_toml(std::string_view text, std::string_view file) {
    if (size_t line = line_with_too_many_dots(text); line != 0) {
        return base::invalid_argument(
            "{}:{}: more than {} `.` outside strings on one line (dotted keys or table headers "
            "nested that deep are refused)",
            file, line, kMaxDotsPerLine);
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
