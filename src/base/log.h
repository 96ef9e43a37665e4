// base/log.h — leveled logging to stderr or a file.
//
// Contract: one process-wide logger, thread-safe, one line per message:
//   2026-11-26T07:00:13.123Z info: pulled `alpine` in 1.2s
// The level starts from `LOCALD_LOG` (debug|info|warn|error; default info;
// an unknown value falls back to info with a warning) on first use. Messages
// below the level cost one comparison (the macros check before formatting).
// A log file is opened O_APPEND|O_CREAT with mode 0600 (logs may hold
// environment names and paths); write failures are dropped, never fatal.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

#include "base/error.h"

namespace locald::base {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };

std::string_view to_string(LogLevel level);
// "debug", "info", "warn"/"warning", "error" (case-insensitive).
Result<LogLevel> parse_log_level(std::string_view text);

LogLevel log_level();
void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);

// Re-reads LOCALD_LOG (done automatically on first use).
void init_log_level_from_env();

// Sends messages to `path` (append, created 0600) instead of stderr.
Result<void> set_log_file(const std::string& path);
// Back to stderr (closes a log file).
void set_log_stderr();

// Writes one line at `level` (no level check: the macros do it).
void log_line(LogLevel level, std::string_view message);

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
    if (log_enabled(level)) {
        log_line(level, fmt::format(format, std::forward<Args>(args)...));
    }
}

}  // namespace locald::base

// LOG_INFO("pulled `{}`", ref); arguments are not evaluated below the level.
#define LOCALD_LOG_AT(level, ...)                                        \
    do {                                                                 \
        if (::locald::base::log_enabled(level)) {                        \
            ::locald::base::log_line(level, ::fmt::format(__VA_ARGS__)); \
        }                                                                \
    } while (0)
#define LOG_DEBUG(...) LOCALD_LOG_AT(::locald::base::LogLevel::Debug, __VA_ARGS__)
#define LOG_INFO(...) LOCALD_LOG_AT(::locald::base::LogLevel::Info, __VA_ARGS__)
#define LOG_WARN(...) LOCALD_LOG_AT(::locald::base::LogLevel::Warn, __VA_ARGS__)
#define LOG_ERROR(...) LOCALD_LOG_AT(::locald::base::LogLevel::Error, __VA_ARGS__)
