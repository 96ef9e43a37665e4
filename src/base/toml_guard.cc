#include "base/toml_guard.h"

namespace locald::base {

size_t toml_line_nested_too_deep(std::string_view text) {
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
                    if (++dots > kTomlMaxDotsPerLine) {
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

}  // namespace locald::base
