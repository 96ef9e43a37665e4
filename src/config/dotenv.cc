#include "config/dotenv.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "config/values.h"

namespace locald::config {

namespace {

bool is_blank(char c) {
    return c == ' ' || c == '\t';
}

bool is_key_start(char c) {
    return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}

bool is_key_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
}

bool is_name_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

// Removes a UTF-8 BOM and turns CRLF into LF so the rest sees one line end.
std::string normalise(std::string_view text) {
    if (text.starts_with("\xEF\xBB\xBF")) {
        text.remove_prefix(3);
    }
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
            continue;
        }
        out.push_back(text[i]);
    }
    // A lone trailing `\r` (a CRLF file cut after its last CR) is a line end too.
    if (!out.empty() && out.back() == '\r') {
        out.pop_back();
    }
    return out;
}

constexpr int kMaxDefaultNesting = 16;
// Linux passes at most MAX_ARG_STRLEN (32 pages) per `KEY=value` string to a
// new process, so no longer value is usable. The cap matters for
// interpolation: `B=$A$A$A…` on every line grows geometrically, and a few
// hundred bytes of .env would otherwise ask for terabytes.
constexpr size_t kMaxValueBytes = 128 * 1024;

class Parser {
public:
    Parser(std::string text, const std::string& file, const Environment& environment,
           EnvOrigin origin)
        : m_text(std::move(text)), m_file(file), m_environment(environment), m_origin(origin) {}

    base::Result<std::vector<EnvEntry>> run() {
        while (m_pos < m_text.size()) {
            skip_blanks();
            if (at_end()) {
                break;
            }
            char c = m_text[m_pos];
            if (c == '\n') {
                ++m_pos;
                ++m_line;
                continue;
            }
            if (c == '#') {
                skip_to_line_end();
                continue;
            }
            TRY(parse_assignment());
        }
        return std::move(m_entries);
    }

private:
    bool at_end() const { return m_pos >= m_text.size(); }
    char peek() const { return at_end() ? '\0' : m_text[m_pos]; }

    void skip_blanks() {
        while (!at_end() && is_blank(m_text[m_pos])) {
            ++m_pos;
        }
    }

    void skip_to_line_end() {
        while (!at_end() && m_text[m_pos] != '\n') {
            ++m_pos;
        }
    }

    std::string rest_of_line() const {
        size_t end = m_text.find('\n', m_pos);
        return m_text.substr(m_pos, end == std::string::npos ? std::string::npos : end - m_pos);
    }

    base::Error error(int line, std::string_view message) const {
        return base::invalid_argument("{}:{}: {}", m_file, line, message);
    }

    base::Error too_long(int line) const {
        return error(line, fmt::format("the value is longer than {} bytes after interpolation "
                                       "(the most one environment variable can pass to a process)",
                                       kMaxValueBytes));
    }

    base::Result<void> parse_assignment() {
        int line = m_line;
        // `export KEY=…`: the prefix only counts when a key follows it, so a
        // variable named `export` (`export=1`) still parses.
        if (std::string_view(m_text).substr(m_pos).starts_with("export") &&
            m_pos + 6 < m_text.size() && is_blank(m_text[m_pos + 6])) {
            size_t after = m_pos + 6;
            while (after < m_text.size() && is_blank(m_text[after])) {
                ++after;
            }
            if (after < m_text.size() && is_key_start(m_text[after])) {
                m_pos = after;
            }
        }
        size_t key_start = m_pos;
        if (!is_key_start(peek())) {
            return error(line, fmt::format("expected `KEY=value`, found `{}` (keys match "
                                           "[A-Za-z_][A-Za-z0-9_.-]*)",
                                           rest_of_line()));
        }
        while (!at_end() && is_key_char(m_text[m_pos])) {
            ++m_pos;
        }
        std::string key = m_text.substr(key_start, m_pos - key_start);
        skip_blanks();
        if (peek() != '=') {
            if (at_end() || peek() == '\n') {
                return error(line, fmt::format("expected `=` after `{}`", key));
            }
            return error(line, fmt::format("expected `=` after `{}`, found `{}` (keys match "
                                           "[A-Za-z_][A-Za-z0-9_.-]*)",
                                           key, rest_of_line()));
        }
        ++m_pos;
        bool blank_before_value = false;
        while (!at_end() && is_blank(m_text[m_pos])) {
            ++m_pos;
            blank_before_value = true;
        }
        std::string value;
        char c = peek();
        if (c == '\'') {
            size_t close = m_text.find('\'', m_pos + 1);
            if (close == std::string::npos) {
                return error(line, fmt::format("unterminated single-quoted value for `{}`", key));
            }
            value = m_text.substr(m_pos + 1, close - m_pos - 1);
            m_line += static_cast<int>(std::count(value.begin(), value.end(), '\n'));
            m_pos = close + 1;
            TRY(expect_line_end(key));
        } else if (c == '"') {
            size_t i = m_pos + 1;
            while (i < m_text.size() && m_text[i] != '"') {
                i += (m_text[i] == '\\' && i + 1 < m_text.size()) ? 2 : 1;
            }
            if (i >= m_text.size()) {
                return error(line, fmt::format("unterminated double-quoted value for `{}`", key));
            }
            std::string raw = m_text.substr(m_pos + 1, i - m_pos - 1);
            value = TRY(expand(raw, /*escapes=*/true, line));
            m_line += static_cast<int>(std::count(raw.begin(), raw.end(), '\n'));
            m_pos = i + 1;
            TRY(expect_line_end(key));
        } else {
            // Unquoted: to the end of the line; `#` opens a comment only at
            // the start of the value after a blank, or after a blank inside it.
            size_t end = m_text.find('\n', m_pos);
            if (end == std::string::npos) {
                end = m_text.size();
            }
            std::string raw = m_text.substr(m_pos, end - m_pos);
            for (size_t i = 0; i < raw.size(); ++i) {
                if (raw[i] == '#' && (i == 0 ? blank_before_value : is_blank(raw[i - 1]))) {
                    raw.resize(i);
                    break;
                }
            }
            while (!raw.empty() && is_blank(raw.back())) {
                raw.pop_back();
            }
            value = TRY(expand(raw, /*escapes=*/false, line));
            m_pos = end;
        }
        if (value.find('\0') != std::string::npos) {
            return error(line, fmt::format("the value of `{}` contains a NUL byte", key));
        }
        m_seen[key] = value;
        m_entries.push_back(EnvEntry{key, std::move(value), m_origin, {m_file, line, 0}});
        return base::ok();
    }

    base::Result<void> expect_line_end(const std::string& key) {
        skip_blanks();
        if (at_end() || peek() == '\n') {
            return base::ok();
        }
        if (peek() == '#') {
            skip_to_line_end();
            return base::ok();
        }
        return error(m_line, fmt::format("unexpected `{}` after the closing quote of `{}`",
                                         rest_of_line(), key));
    }

    std::string lookup(const std::string& name) const {
        if (auto it = m_seen.find(name); it != m_seen.end()) {
            return it->second;
        }
        if (auto it = m_environment.find(name); it != m_environment.end()) {
            return it->second;
        }
        return {};
    }

    // Expands `$VAR`, `${VAR}`, `${VAR:-default}` (and, with `escapes`, the
    // double-quote escapes) in `raw`. `line` is where the value starts.
    base::Result<std::string> expand(std::string_view raw, bool escapes, int line,
                                     int nesting = 0) const {
        std::string out;
        size_t i = 0;
        while (i < raw.size()) {
            // Every step appends at most one earlier value (itself capped).
            if (out.size() > kMaxValueBytes) {
                return too_long(line);
            }
            char c = raw[i];
            if (escapes && c == '\\' && i + 1 < raw.size()) {
                char next = raw[i + 1];
                switch (next) {
                    case 'n':
                        out.push_back('\n');
                        break;
                    case 'r':
                        out.push_back('\r');
                        break;
                    case 't':
                        out.push_back('\t');
                        break;
                    case '"':
                    case '\\':
                    case '$':
                        out.push_back(next);
                        break;
                    default:
                        // Like the shell inside double quotes: an unknown
                        // escape keeps its backslash (`"C:\dir"`).
                        out.push_back('\\');
                        out.push_back(next);
                        break;
                }
                i += 2;
                continue;
            }
            if (c != '$' || i + 1 >= raw.size()) {
                out.push_back(c);
                ++i;
                continue;
            }
            char next = raw[i + 1];
            if (next == '(') {
                // Command substitution is never executed: keep `$(...)` as is.
                size_t depth = 0;
                size_t j = i + 1;
                for (; j < raw.size(); ++j) {
                    if (raw[j] == '(') {
                        ++depth;
                    } else if (raw[j] == ')' && --depth == 0) {
                        break;
                    }
                }
                size_t end = j < raw.size() ? j + 1 : raw.size();
                out.append(raw.substr(i, end - i));
                i = end;
                continue;
            }
            if (next == '{') {
                // Find the matching `}`, allowing `${A:-${B}}`.
                size_t depth = 0;
                size_t j = i + 1;
                for (; j < raw.size(); ++j) {
                    if (raw[j] == '{') {
                        ++depth;
                    } else if (raw[j] == '}' && --depth == 0) {
                        break;
                    }
                }
                if (j >= raw.size()) {
                    return error(line, fmt::format("unterminated `{}` (expected `${{VAR}}` or "
                                                   "`${{VAR:-default}}`)",
                                                   raw.substr(i)));
                }
                std::string_view inner = raw.substr(i + 2, j - i - 2);
                size_t name_end = 0;
                if (!inner.empty() && is_key_start(inner[0])) {
                    while (name_end < inner.size() && is_key_char(inner[name_end])) {
                        ++name_end;
                    }
                }
                std::string name(inner.substr(0, name_end));
                std::string_view tail = inner.substr(name_end);
                if (name.empty() || (!tail.empty() && !tail.starts_with(":-"))) {
                    return error(line, fmt::format("invalid `${{{}}}` (expected `${{VAR}}` or "
                                                   "`${{VAR:-default}}`)",
                                                   inner));
                }
                std::string value = lookup(name);
                if (!tail.empty() && value.empty()) {
                    // Bounded: a pathological file must not exhaust the stack.
                    if (nesting >= kMaxDefaultNesting) {
                        return error(line, fmt::format("`${{…:-…}}` defaults nest deeper than {}",
                                                       kMaxDefaultNesting));
                    }
                    value = TRY(expand(tail.substr(2), escapes, line, nesting + 1));
                }
                out += value;
                i = j + 1;
                continue;
            }
            if (is_key_start(next)) {
                size_t j = i + 1;
                while (j < raw.size() && is_name_char(raw[j])) {
                    ++j;
                }
                out += lookup(std::string(raw.substr(i + 1, j - i - 1)));
                i = j;
                continue;
            }
            // A `$` before anything else is just a dollar sign.
            out.push_back(c);
            ++i;
        }
        if (out.size() > kMaxValueBytes) {
            return too_long(line);
        }
        return out;
    }

    std::string m_text;
    const std::string& m_file;
    const Environment& m_environment;
    EnvOrigin m_origin;
    size_t m_pos = 0;
    int m_line = 1;
    std::map<std::string, std::string> m_seen;
    std::vector<EnvEntry> m_entries;
};

}  // namespace

base::Result<std::vector<EnvEntry>> parse_dotenv(std::string_view text, const std::string& file,
                                                 const Environment& environment, EnvOrigin origin) {
    if (text.find('\0') != std::string_view::npos) {
        return base::invalid_argument("{}: not a text file (it contains a NUL byte)", file);
    }
    Parser parser(normalise(text), file, environment, origin);
    return parser.run();
}

}  // namespace locald::config
