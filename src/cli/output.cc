#include "cli/output.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <optional>

#include <fmt/format.h>

namespace locald::cli {

bool use_colour(int fd) {
    if (!::isatty(fd)) {
        return false;
    }
    const char* no_colour = std::getenv("NO_COLOR");
    if (no_colour != nullptr && *no_colour != '\0') {
        return false;
    }
    const char* term = std::getenv("TERM");
    return term == nullptr || std::string_view(term) != "dumb";
}

std::string_view colour_for(std::string_view name) {
    // Readable on dark and light backgrounds; red is kept for errors.
    static constexpr std::string_view kPalette[] = {"36", "33", "32", "35", "34",       "96",
                                                    "93", "92", "95", "94", "38;5;208", "38;5;141"};
    // FNV-1a: stable across runs and builds, unlike std::hash.
    std::uint32_t hash = 2166136261u;
    for (unsigned char c : name) {
        hash = (hash ^ c) * 16777619u;
    }
    return kPalette[hash % std::size(kPalette)];
}

std::string log_prefix(std::int64_t unix_ms, std::string_view name, size_t name_width,
                       bool colour) {
    std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
    std::tm local{};
    ::localtime_r(&seconds, &local);
    char clock[16];
    std::strftime(clock, sizeof(clock), "%H:%M:%S", &local);
    std::string padded(name);
    if (padded.size() < name_width) {
        padded.append(name_width - padded.size(), ' ');
    }
    if (colour) {
        return fmt::format("\x1b[{}m{} {} |\x1b[0m ", colour_for(name), clock, padded);
    }
    return fmt::format("{} {} | ", clock, padded);
}

std::string short_duration(std::int64_t ms) {
    if (ms < 0) {
        ms = 0;
    }
    if (ms < 1000) {
        return fmt::format("{}ms", ms);
    }
    if (ms < 60'000) {
        return fmt::format("{:.1f}s", static_cast<double>(ms) / 1000.0);
    }
    if (ms < 3'600'000) {
        return fmt::format("{}m{:02}s", ms / 60'000, (ms / 1000) % 60);
    }
    return fmt::format("{}h{:02}m", ms / 3'600'000, (ms / 60'000) % 60);
}

std::string one_line(std::string_view text) {
    std::string out;
    bool pending_space = false;
    for (char c : text) {
        auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte == 0x7f || c == ' ') {
            pending_space = true;
            continue;
        }
        if (pending_space && !out.empty()) {
            out.push_back(' ');
        }
        pending_space = false;
        out.push_back(c);
    }
    return out;
}

void print_table(const std::vector<std::vector<std::string>>& raw_rows) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& raw : raw_rows) {
        std::vector<std::string> row;
        for (const auto& cell : raw) {
            row.push_back(one_line(cell));
        }
        rows.push_back(std::move(row));
    }
    std::vector<size_t> widths;
    for (const auto& row : rows) {
        widths.resize(std::max(widths.size(), row.size()), 0);
        for (size_t i = 0; i < row.size(); ++i) {
            widths[i] = std::max(widths[i], row[i].size());
        }
    }
    for (const auto& row : rows) {
        std::string line;
        for (size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) {
                line.append(widths[i] - row[i].size() + 2, ' ');
            }
        }
        while (!line.empty() && line.back() == ' ') {
            line.pop_back();
        }
        std::puts(line.c_str());
    }
}

std::int64_t parse_since(std::string_view text) {
    if (text.empty()) {
        return -1;
    }
    size_t digits = 0;
    std::int64_t value = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
        value = value * 10 + (text[digits] - '0');
        if (value > 1'000'000'000) {
            return -1;
        }
        ++digits;
    }
    if (digits == 0) {
        return -1;
    }
    std::string_view unit = text.substr(digits);
    if (unit == "ms") {
        return value;
    }
    if (unit == "s" || unit.empty()) {
        return value * 1000;
    }
    if (unit == "m") {
        return value * 60'000;
    }
    if (unit == "h") {
        return value * 3'600'000;
    }
    if (unit == "d") {
        return value * 86'400'000;
    }
    return -1;
}

}  // namespace locald::cli

namespace locald::cli {

namespace {

std::string_view state_colour(std::string_view state) {
    if (state == "ready" || state == "running") {
        return "32";
    }
    if (state == "failed") {
        return "31";
    }
    if (state == "starting" || state == "stopping") {
        return "33";
    }
    return "2";
}

std::string json_string(const base::Json& json, std::string_view key) {
    const base::Json* value = json.find(key);
    return value && value->is_string() ? value->as_string() : std::string();
}

}  // namespace

namespace {

// `started_at` ("2026-11-26T07:39:40.169Z") as a time point, if there is one.
std::optional<std::chrono::system_clock::time_point> started_at(const base::Json& service) {
    const base::Json* started = service.find("started_at");
    if (started == nullptr || !started->is_string()) {
        return std::nullopt;
    }
    std::tm tm{};
    int ms = 0;
    if (std::sscanf(started->as_string().c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon,
                    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7) {
        return std::nullopt;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return std::chrono::system_clock::from_time_t(::timegm(&tm)) + std::chrono::milliseconds(ms);
}

}  // namespace

Progress::Progress(bool tty, bool colour)
    : m_tty(tty),
      m_colour(colour),
      m_begin(std::chrono::steady_clock::now()),
      m_begin_wall(std::chrono::system_clock::now()) {
    struct winsize size {};
    if (m_tty && ::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0) {
        m_columns = size.ws_col;
    }
}

std::int64_t Progress::elapsed_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 m_begin)
        .count();
}

void Progress::update(const base::Json& service) {
    std::string name = json_string(service, "project") + ":" + json_string(service, "name");
    std::string state = json_string(service, "state");
    const base::Json* waiting = service.find("waiting");
    if (waiting && waiting->is_bool() && waiting->as_bool()) {
        state = "pending";
    }
    std::string reason = one_line(json_string(service, "reason"));
    std::string detail;
    if (const auto* pid = service.find("pid"); pid && pid->is_int()) {
        detail += fmt::format("pid {}", pid->as_int());
    }
    if (const auto* port = service.find("port"); port && port->is_int()) {
        detail += fmt::format("{}port {}", detail.empty() ? "" : ", ", port->as_int());
    }
    Row* row = nullptr;
    for (auto& r : m_rows) {
        if (r.name == name) {
            row = &r;
        }
    }
    bool is_new = row == nullptr;
    if (is_new) {
        m_rows.push_back(Row{name, "", "", "", 0, false});
        row = &m_rows.back();
    }
    // An image being pulled/unpacked: each progress step is a line too.
    const base::Json* preparing = service.find("preparing");
    bool progress = preparing && preparing->is_bool() && preparing->as_bool();
    bool changed =
        row->state != state || ((state == "failed" || progress) && row->reason != reason);
    if (row->state != state) {
        row->changed_ms = elapsed_ms();
        // The state it had before this command began (started earlier): no
        // time. A service this command started shows how long that took, even
        // when its first event is already `running`.
        auto started = started_at(service);
        row->initial = is_new && started && *started < m_begin_wall;
    }
    row->state = state;
    row->reason = reason;
    row->detail = detail;
    if (m_tty) {
        redraw();
    } else if (changed) {
        std::string line = fmt::format("{}: {}", name, state);
        // The time it took — not for the state a service already had when
        // the command began (`down` of a ready service is not "ready (0ms)").
        if (!row->initial && (state == "ready" || state == "running" || state == "failed" ||
                              state == "exited" || state == "stopped")) {
            line += fmt::format(" ({})", short_duration(row->changed_ms));
        }
        if (!reason.empty() && state != "ready" && state != "running") {
            line += fmt::format(" — {}", reason);
        }
        std::puts(line.c_str());
        std::fflush(stdout);
    }
}

std::string Progress::render(const Row& row) const {
    size_t width = 0;
    for (const auto& r : m_rows) {
        width = std::max(width, r.name.size());
    }
    std::string name = row.name;
    name.append(width - name.size(), ' ');
    std::string state = row.state;
    state.append(state.size() < 8 ? 8 - state.size() : 0, ' ');
    bool final = row.state == "ready" || row.state == "running" || row.state == "failed" ||
                 row.state == "exited" || row.state == "stopped";
    std::string when = final ? (row.initial ? "" : short_duration(row.changed_ms))
                             : short_duration(elapsed_ms() - row.changed_ms) + "…";
    std::string extra = row.detail;
    if (!row.reason.empty() && !(row.state == "ready" || row.state == "running")) {
        extra = row.reason;
    }
    // Rows are redrawn by moving the cursor up one line per row: a row that
    // wraps would leave stale lines behind, so cut the detail to fit.
    size_t used = 2 + name.size() + 2 + state.size() + 2 + std::max<size_t>(when.size(), 7) + 2;
    if (m_columns > used + 1) {
        size_t room = m_columns - used - 1;
        std::vector<size_t> starts;  // where each UTF-8 character begins
        for (size_t i = 0; i < extra.size(); ++i) {
            if ((static_cast<unsigned char>(extra[i]) & 0xc0) != 0x80) {
                starts.push_back(i);
            }
        }
        if (starts.size() > room && room > 0) {
            extra = extra.substr(0, starts[room - 1]) + "…";
        }
    }
    if (m_colour) {
        return fmt::format("  {}  \x1b[{}m{}\x1b[0m  {:>7}  \x1b[2m{}\x1b[0m", name,
                           state_colour(row.state), state, when, extra);
    }
    return fmt::format("  {}  {}  {:>7}  {}", name, state, when, extra);
}

void Progress::redraw() {
    std::string out;
    if (m_drawn > 0) {
        out += fmt::format("\x1b[{}A", m_drawn);
    }
    for (const auto& row : m_rows) {
        out += "\r\x1b[2K";
        out += render(row);
        out += "\n";
    }
    m_drawn = m_rows.size();
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
}

void Progress::done() {
    if (m_tty) {
        redraw();
    }
    for (const auto& row : m_rows) {
        if (row.state == "failed" && !row.reason.empty()) {
            std::fprintf(stderr, "locald: %s failed: %s\n", row.name.c_str(), row.reason.c_str());
        }
    }
}

LogPrinter::LogPrinter(bool colour, std::vector<std::string> qualified_names) : m_colour(colour) {
    std::string project;
    for (const auto& name : qualified_names) {
        std::string p = name.substr(0, name.find(':'));
        if (!project.empty() && p != project) {
            m_single_project = false;
        }
        project = p;
    }
    for (const auto& name : qualified_names) {
        m_width = std::max(m_width, display(name).size());
    }
}

std::string LogPrinter::display(const std::string& qualified) const {
    if (!m_single_project) {
        return qualified;
    }
    size_t colon = qualified.find(':');
    return colon == std::string::npos ? qualified : qualified.substr(colon + 1);
}

void LogPrinter::print(const base::Json& line) {
    std::string name = display(json_string(line, "service"));
    std::int64_t time = 0;
    if (const auto* t = line.find("time"); t && t->is_int()) {
        time = t->as_int();
    }
    std::string stream = json_string(line, "stream");
    std::string text = json_string(line, "text");
    std::string out = log_prefix(time, name, m_width, m_colour);
    if (stream == "sys") {
        out += m_colour ? fmt::format("\x1b[2m[locald] {}\x1b[0m", text) : "[locald] " + text;
    } else if (stream == "gap") {
        out += m_colour ? fmt::format("\x1b[33m[locald] … {}\x1b[0m", text) : "[locald] … " + text;
    } else {
        out += text;
        if (m_colour) {
            out += "\x1b[0m";  // a service's unterminated colour must not leak
        }
    }
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace locald::cli
