#include "config/values.h"

#include <signal.h>
#include <string.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

namespace locald::config {

namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

std::string upper(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

}  // namespace

base::Result<Duration> parse_duration(std::string_view text) {
    auto bad = [&](std::string_view why) {
        return base::invalid_argument(
            "invalid duration `{}`: {} (expected a number with a unit: `500ms`, `10s`, `2m`, "
            "`1h`, or a sum like `1m30s`)",
            text, why);
    };
    if (text.empty()) {
        return bad("it is empty");
    }
    // Milliseconds, kept in 128 bits of headroom-free arithmetic: refuse
    // anything beyond ~290 million years instead of wrapping.
    constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max() / 2;
    std::int64_t total = 0;
    size_t i = 0;
    while (i < text.size()) {
        size_t start = i;
        while (i < text.size() && is_digit(text[i])) {
            ++i;
        }
        if (i == start) {
            if (text[i] == '-') {
                return bad("it is negative");
            }
            return bad(fmt::format("expected a digit at `{}`", text.substr(start)));
        }
        std::int64_t number = 0;
        auto [ptr, ec] = std::from_chars(text.data() + start, text.data() + i, number);
        if (ec != std::errc()) {
            return bad("the number is too large");
        }
        if (i < text.size() && text[i] == '.') {
            return bad("fractions are not supported; use a smaller unit (`1500ms`)");
        }
        size_t unit_start = i;
        while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) {
            ++i;
        }
        std::string_view unit = text.substr(unit_start, i - unit_start);
        std::int64_t factor = 0;
        if (unit == "ms") {
            factor = 1;
        } else if (unit == "s") {
            factor = 1000;
        } else if (unit == "m") {
            factor = 60 * 1000;
        } else if (unit == "h") {
            factor = 60 * 60 * 1000;
        } else if (unit.empty()) {
            return bad("missing unit");
        } else {
            return bad(fmt::format("unknown unit `{}`", unit));
        }
        if (number > kMax / factor || total > kMax - number * factor) {
            return bad("it is too large");
        }
        total += number * factor;
    }
    return Duration(total);
}

std::string format_duration(Duration duration) {
    std::int64_t ms = duration.count();
    if (ms == 0) {
        return "0s";
    }
    std::string out;
    if (ms % 1000 != 0) {
        if (ms < 1000) {
            return fmt::format("{}ms", ms);
        }
        // Not a whole number of seconds: milliseconds are the exact spelling.
        return fmt::format("{}ms", ms);
    }
    std::int64_t seconds = ms / 1000;
    std::int64_t hours = seconds / 3600;
    std::int64_t minutes = (seconds % 3600) / 60;
    std::int64_t secs = seconds % 60;
    if (hours != 0) {
        out += fmt::format("{}h", hours);
    }
    if (minutes != 0) {
        out += fmt::format("{}m", minutes);
    }
    if (secs != 0) {
        out += fmt::format("{}s", secs);
    }
    return out;
}

base::Result<Signal> parse_signal(std::string_view text) {
    std::string name = upper(text);
    if (name.starts_with("SIG")) {
        name.erase(0, 3);
    }
    auto bad = [&]() {
        return base::invalid_argument(
            "unknown signal `{}` (expected a signal name such as `SIGTERM`, `SIGINT`, `SIGQUIT`, "
            "`SIGHUP`, `SIGUSR1`, `SIGRTMIN+3`)",
            text);
    };
    if (name.empty()) {
        return bad();
    }
    // Aliases glibc's sigabbrev_np does not return.
    if (name == "IOT") {
        name = "ABRT";
    } else if (name == "POLL") {
        name = "IO";
    } else if (name == "CLD") {
        name = "CHLD";
    }
    for (int number = 1; number < SIGRTMIN; ++number) {
        const char* abbrev = sigabbrev_np(number);
        if (abbrev != nullptr && name == abbrev) {
            return Signal{number, fmt::format("SIG{}", abbrev)};
        }
    }
    auto realtime = [&](std::string_view base_name, int base_number,
                        int sign) -> base::Result<Signal> {
        std::string_view rest = std::string_view(name).substr(base_name.size());
        if (rest.empty()) {
            return Signal{base_number, fmt::format("SIG{}", base_name)};
        }
        // The offset is digits only: from_chars alone would take a second
        // sign (`SIGRTMIN+-0`), and an unbounded offset would overflow.
        if (rest[0] != (sign > 0 ? '+' : '-') || rest.size() < 2 || !is_digit(rest[1])) {
            return bad();
        }
        int offset = 0;
        auto [ptr, ec] = std::from_chars(rest.data() + 1, rest.data() + rest.size(), offset);
        if (ec != std::errc() || ptr != rest.data() + rest.size()) {
            return bad();
        }
        if (offset > SIGRTMAX - SIGRTMIN) {
            return base::invalid_argument(
                "unknown signal `{}` (real-time signals are SIG{}{}0 … SIG{}{}{})", text, base_name,
                sign > 0 ? '+' : '-', base_name, sign > 0 ? '+' : '-', SIGRTMAX - SIGRTMIN);
        }
        int number = base_number + sign * offset;
        return Signal{number, fmt::format("SIG{}{}{}", base_name, sign > 0 ? '+' : '-', offset)};
    };
    if (name.starts_with("RTMIN")) {
        return realtime("RTMIN", SIGRTMIN, 1);
    }
    if (name.starts_with("RTMAX")) {
        return realtime("RTMAX", SIGRTMAX, -1);
    }
    return bad();
}

base::Result<std::uint64_t> parse_memory(std::string_view text) {
    auto bad = [&](std::string_view why) {
        return base::invalid_argument(
            "invalid memory size `{}`: {} (expected bytes or a number with a unit: `512M`, `1G`, "
            "`64MiB`, `100k`)",
            text, why);
    };
    size_t i = 0;
    while (i < text.size() && (is_digit(text[i]) || text[i] == '.')) {
        ++i;
    }
    if (i == 0) {
        return bad("expected a number");
    }
    std::string number_text(text.substr(0, i));
    double number = 0;
    auto [ptr, ec] =
        std::from_chars(number_text.data(), number_text.data() + number_text.size(), number);
    if (ec != std::errc() || ptr != number_text.data() + number_text.size()) {
        return bad("expected a number");
    }
    std::string unit = lower(text.substr(i));
    if (unit.ends_with("ib")) {
        unit.resize(unit.size() - 2);
    } else if (unit.size() == 2 && unit[1] == 'b') {
        unit.resize(1);
    }
    double factor = 0;
    if (unit.empty() || unit == "b") {
        factor = 1;
    } else if (unit == "k") {
        factor = 1024.0;
    } else if (unit == "m") {
        factor = 1024.0 * 1024;
    } else if (unit == "g") {
        factor = 1024.0 * 1024 * 1024;
    } else if (unit == "t") {
        factor = 1024.0 * 1024 * 1024 * 1024;
    } else {
        return bad(fmt::format("unknown unit `{}`", text.substr(i)));
    }
    double bytes = std::floor(number * factor);
    if (bytes < 1) {
        return bad("it must be at least one byte");
    }
    if (bytes >= 9.0e18) {
        return bad("it is too large");
    }
    return static_cast<std::uint64_t>(bytes);
}

bool is_valid_service_name(std::string_view name) {
    if (name.empty()) {
        return false;
    }
    for (char c : name) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

bool is_valid_env_key(std::string_view key) {
    if (key.empty()) {
        return false;
    }
    auto first = static_cast<unsigned char>(key[0]);
    if (!(std::isalpha(first) || first == '_')) {
        return false;
    }
    for (char c : key.substr(1)) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return true;
}

}  // namespace locald::config
