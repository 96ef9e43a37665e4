#include "base/log.h"

#include <fcntl.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "base/unique_fd.h"

namespace locald::base {

namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};
std::once_flag g_env_once;
std::mutex g_sink_mutex;
UniqueFd g_file;  // guarded by g_sink_mutex; stderr when invalid

void apply_env_level() {
    const char* text = std::getenv("LOCALD_LOG");
    if (text == nullptr || *text == '\0') {
        return;
    }
    auto level = parse_log_level(text);
    if (level) {
        g_level.store(static_cast<int>(*level));
        return;
    }
    g_level.store(static_cast<int>(LogLevel::Info));
    log_line(LogLevel::Warn,
             fmt::format("LOCALD_LOG=`{}` is not debug, info, warn or error; using info", text));
}

void ensure_env_read() {
    std::call_once(g_env_once, apply_env_level);
}

std::string timestamp() {
    struct timespec now;
    ::clock_gettime(CLOCK_REALTIME, &now);
    struct tm utc;
    ::gmtime_r(&now.tv_sec, &utc);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                       utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                       now.tv_nsec / 1000000);
}

}  // namespace

std::string_view to_string(LogLevel level) {
    switch (level) {
        case LogLevel::Debug:
            return "debug";
        case LogLevel::Info:
            return "info";
        case LogLevel::Warn:
            return "warn";
        case LogLevel::Error:
            return "error";
    }
    return "unknown";
}

Result<LogLevel> parse_log_level(std::string_view text) {
    auto is = [&](const char* name) {
        return text.size() == std::char_traits<char>::length(name) &&
               ::strncasecmp(text.data(), name, text.size()) == 0;
    };
    if (is("debug")) {
        return LogLevel::Debug;
    }
    if (is("info")) {
        return LogLevel::Info;
    }
    if (is("warn") || is("warning")) {
        return LogLevel::Warn;
    }
    if (is("error")) {
        return LogLevel::Error;
    }
    return invalid_argument("unknown log level `{}` (expected debug, info, warn or error)", text);
}

LogLevel log_level() {
    ensure_env_read();
    return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed));
}

void set_log_level(LogLevel level) {
    // An explicit level wins over LOCALD_LOG read later.
    ensure_env_read();
    g_level.store(static_cast<int>(level));
}

bool log_enabled(LogLevel level) {
    return static_cast<int>(level) >= static_cast<int>(log_level());
}

void init_log_level_from_env() {
    ensure_env_read();
    apply_env_level();
}

Result<void> set_log_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        return errno_error("opening log file `{}`", path);
    }
    std::lock_guard lock(g_sink_mutex);
    g_file.reset(fd);
    return ok();
}

void set_log_stderr() {
    std::lock_guard lock(g_sink_mutex);
    g_file.reset();
}

void log_line(LogLevel level, std::string_view message) {
    std::string line = fmt::format("{} {}: {}\n", timestamp(), to_string(level), message);
    std::lock_guard lock(g_sink_mutex);
    int fd = g_file.valid() ? g_file.get() : STDERR_FILENO;
    // One write per line so lines from several processes appending to the
    // same file do not interleave; errors are dropped (nowhere to report).
    std::string_view rest = line;
    while (!rest.empty()) {
        ssize_t n = ::write(fd, rest.data(), rest.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        rest.remove_prefix(static_cast<size_t>(n));
    }
}

}  // namespace locald::base
