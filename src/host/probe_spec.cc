// The data half of host/probe.h: names, validation, log matching. The
// runners that need an event loop are in active_probe.cc.
#include <algorithm>
#include <regex>

#include <fmt/format.h>

#include "host/probe.h"

namespace locald::host {

std::string_view to_string(ProbeKind kind) {
    switch (kind) {
        case ProbeKind::Http:
            return "http";
        case ProbeKind::Tcp:
            return "tcp";
        case ProbeKind::Exec:
            return "exec";
        case ProbeKind::Log:
            return "log";
        case ProbeKind::Notify:
            return "notify";
    }
    return "?";
}

ProbeSpec ProbeSpec::port_open(uint16_t port, std::chrono::milliseconds interval) {
    ProbeSpec spec;
    spec.kind = ProbeKind::Tcp;
    spec.port = port;
    spec.interval = interval;
    spec.timeout = std::chrono::milliseconds(1000);
    // A minute of misses in a row, whatever the interval: a port that never
    // opens fails the start after a minute (no start period on top of it),
    // and a ready service's port that stays closed for a minute is dead.
    spec.start_period = std::chrono::milliseconds(0);
    spec.failure_hint = fmt::format("does the service listen on $PORT ({})?", port);
    spec.retries =
        static_cast<int>(std::max<std::chrono::milliseconds::rep>(1, kPortOpenBudget / interval));
    return spec;
}

base::Result<void> ProbeSpec::validate() const {
    if (retries < 1) {
        return base::invalid_argument("probe retries must be at least 1, got {}", retries);
    }
    if (interval.count() <= 0) {
        return base::invalid_argument("probe interval must be positive");
    }
    if (timeout.count() <= 0) {
        return base::invalid_argument("probe timeout must be positive");
    }
    if (start_period.count() < 0) {
        return base::invalid_argument("probe start_period must not be negative");
    }
    switch (kind) {
        case ProbeKind::Http:
            if (http_path.empty() || http_path[0] != '/') {
                return base::invalid_argument("http probe path `{}` must start with '/'",
                                              http_path);
            }
            if (http_path.find_first_of("\r\n ") != std::string::npos) {
                return base::invalid_argument("http probe path `{}` contains whitespace",
                                              http_path);
            }
            [[fallthrough]];
        case ProbeKind::Tcp:
            if (port == 0) {
                return base::invalid_argument("{} probe needs a port", to_string(kind));
            }
            break;
        case ProbeKind::Exec:
            if (exec_argv.empty() || exec_argv[0].empty()) {
                return base::invalid_argument("exec probe needs a command");
            }
            break;
        case ProbeKind::Log:
            TRY(LogMatcher::create(log_pattern));
            break;
        case ProbeKind::Notify:
            break;
    }
    return base::ok();
}

base::Result<LogMatcher> LogMatcher::create(std::string_view pattern) {
    if (pattern.empty()) {
        return base::invalid_argument("log probe needs a pattern");
    }
    LogMatcher matcher;
    if (pattern.size() >= 2 && pattern.front() == '/' && pattern.back() == '/') {
        std::string expression(pattern.substr(1, pattern.size() - 2));
        // std::regex throws on a bad expression; contain it here.
        try {
            matcher.m_regex.emplace(expression, std::regex::ECMAScript | std::regex::optimize);
        } catch (const std::regex_error& error) {
            return base::invalid_argument("log probe regex `{}`: {}", expression, error.what());
        }
    } else {
        matcher.m_substring = std::string(pattern);
    }
    return matcher;
}

bool LogMatcher::matches(std::string_view line) const {
    std::string clean = strip_ansi(line);
    if (m_regex) {
        // Regex matching on huge lines could be slow; the log sink caps lines.
        try {
            return std::regex_search(clean, *m_regex);
        } catch (const std::regex_error&) {
            return false;  // e.g. error_complexity on pathological input
        }
    }
    return clean.find(m_substring) != std::string::npos;
}

std::string strip_ansi(std::string_view line) {
    std::string out;
    out.reserve(line.size());
    size_t i = 0;
    while (i < line.size()) {
        char c = line[i];
        if (c != '\x1b') {
            out.push_back(c);
            ++i;
            continue;
        }
        if (i + 1 >= line.size()) {
            break;
        }
        char kind = line[i + 1];
        if (kind == '[') {
            // CSI: parameters and intermediates, then one final byte 0x40–0x7e.
            i += 2;
            while (i < line.size() && !(line[i] >= 0x40 && line[i] <= 0x7e)) {
                ++i;
            }
            i += 1;
        } else if (kind == ']') {
            // OSC: until BEL or ST (ESC \).
            i += 2;
            while (i < line.size()) {
                if (line[i] == '\x07') {
                    ++i;
                    break;
                }
                if (line[i] == '\x1b' && i + 1 < line.size() && line[i + 1] == '\\') {
                    i += 2;
                    break;
                }
                ++i;
            }
        } else {
            i += 2;  // two-byte escape (ESC c, ESC =, …)
        }
    }
    return out;
}

}  // namespace locald::host
