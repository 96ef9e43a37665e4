#include "host/log_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <cerrno>

namespace locald::host {
namespace {

// "2026-11-26T07:00:00.123Z"
std::string format_time(WallTime time) {
    auto since_epoch = time.time_since_epoch();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count();
    time_t seconds = static_cast<time_t>(ms / 1000);
    struct tm tm {};
    gmtime_r(&seconds, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

base::Result<void> make_parent_dirs(const std::string& path) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0) {
        return base::ok();
    }
    std::string dir = path.substr(0, slash);
    for (size_t i = 1; i <= dir.size(); ++i) {
        if (i == dir.size() || dir[i] == '/') {
            std::string part = dir.substr(0, i);
            if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
                return base::errno_error("creating log directory `{}`", part);
            }
        }
    }
    return base::ok();
}

}  // namespace

std::string_view to_string(LogStream stream) {
    switch (stream) {
        case LogStream::Output:
            return "out";
        case LogStream::System:
            return "sys";
        case LogStream::Gap:
            return "gap";
    }
    return "?";
}

LogSubscription::~LogSubscription() {
    if (m_sink) {
        m_sink->unsubscribe(this);
    }
}

size_t LogSubscription::drain(std::vector<LogRecord>& out) {
    size_t count = m_records.size();
    for (auto& record : m_records) {
        out.push_back(std::move(record));
    }
    m_records.clear();
    if (m_pending_dropped > 0) {
        // Records are dropped only while the queue is full, so the loss sits
        // exactly after the records just handed out.
        LogRecord gap;
        gap.stream = LogStream::Gap;
        gap.dropped = m_pending_dropped;
        gap.seq = out.empty() ? 0 : out.back().seq + 1;
        gap.time = out.empty() ? WallTime{} : out.back().time;
        gap.text = fmt::format("[locald: {} line{} dropped: reader too slow]", m_pending_dropped,
                               m_pending_dropped == 1 ? "" : "s");
        out.push_back(std::move(gap));
        m_pending_dropped = 0;
        ++count;
    }
    return count;
}

uint64_t LogSubscription::drain_raw(std::string& out) {
    out.append(m_bytes);
    m_bytes.clear();
    return std::exchange(m_pending_dropped, 0);
}

bool LogSubscription::empty() const {
    return m_records.empty() && m_bytes.empty() && m_pending_dropped == 0;
}

LogSink::LogSink(LogSinkOptions options, const Clock& clock)
    : m_options(std::move(options)), m_clock(clock) {}

base::Result<std::unique_ptr<LogSink>> LogSink::create(LogSinkOptions options, const Clock& clock) {
    if (options.ring_lines == 0) {
        return base::invalid_argument("log ring must hold at least one line");
    }
    if (options.max_line_bytes == 0) {
        return base::invalid_argument("max_line_bytes must be positive");
    }
    std::unique_ptr<LogSink> sink(new LogSink(std::move(options), clock));
    if (!sink->m_options.file_path.empty()) {
        TRY(make_parent_dirs(sink->m_options.file_path));
        TRY(sink->open_file());
    }
    return sink;
}

LogSink::~LogSink() {
    flush();
    for (auto* subscription : m_subscribers) {
        subscription->m_sink = nullptr;
    }
}

base::Result<void> LogSink::open_file() {
    const std::string& path = m_options.file_path;
    m_file.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!m_file) {
        return base::errno_error("opening log file `{}`", path);
    }
    struct stat st {};
    if (::fstat(m_file.get(), &st) != 0) {
        return base::errno_error("stat of log file `{}`", path);
    }
    m_file_size = static_cast<uint64_t>(st.st_size);
    return base::ok();
}

void LogSink::rotate() {
    const std::string& path = m_options.file_path;
    m_file.reset();
    if (m_options.file_keep <= 0) {
        ::truncate(path.c_str(), 0);
    } else {
        // Drop the oldest first so no rename below replaces a file: ext4
        // (auto_da_alloc) starts writeback of the renamed file when a rename
        // replaces one, which stalled the loop on every rotation of a flood.
        ::unlink(fmt::format("{}.{}", path, m_options.file_keep).c_str());
        for (int i = m_options.file_keep - 1; i >= 1; --i) {
            std::string from = fmt::format("{}.{}", path, i);
            std::string to = fmt::format("{}.{}", path, i + 1);
            ::rename(from.c_str(), to.c_str());  // a missing older file is fine
        }
        ::rename(path.c_str(), (path + ".1").c_str());
    }
    if (auto opened = open_file(); !opened && !m_file_error) {
        m_file_error = opened.release_error();
    }
}

void LogSink::flush() {
    if (m_file_buffer.empty()) {
        return;
    }
    if (!m_file) {
        m_file_buffer.clear();
        return;
    }
    size_t done = 0;
    while (done < m_file_buffer.size()) {
        ssize_t n = ::write(m_file.get(), m_file_buffer.data() + done, m_file_buffer.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            // Disk full or similar: the ring keeps working; report once.
            if (!m_file_error) {
                m_file_error = base::errno_error("writing log file `{}`", m_options.file_path);
            }
            break;
        }
        done += static_cast<size_t>(n);
    }
    m_file_size += done;
    m_file_buffer.clear();
    if (m_file_size >= m_options.file_max_bytes) {
        rotate();
    }
}

void LogSink::append_file(const LogRecord& record, std::string_view stamp) {
    if (!m_file) {
        return;
    }
    m_file_buffer.append(stamp);
    m_file_buffer.push_back(' ');
    m_file_buffer.append(to_string(record.stream));
    m_file_buffer.push_back(' ');
    m_file_buffer.append(record.text);
    m_file_buffer.push_back('\n');
    if (m_file_buffer.size() >= m_options.file_buffer_bytes ||
        m_file_size + m_file_buffer.size() >= m_options.file_max_bytes) {
        flush();
    }
}

void LogSink::emit(LogStream stream, std::string_view text, WallTime time, std::string_view stamp) {
    // A full ring recycles its oldest record: its string keeps its capacity,
    // so a flood of lines costs no malloc/free per line.
    LogRecord record;
    if (!m_ring.empty() && m_ring.size() >= m_options.ring_lines) {
        record = std::move(m_ring.front());
        m_ring.pop_front();
    }
    record.seq = m_next_seq++;
    record.time = time;
    record.stream = stream;
    record.text.assign(text);
    if (m_line_hook) {
        m_line_hook(record);
    }
    append_file(record, stamp);
    for (auto* subscription : m_subscribers) {
        if (subscription->m_raw) {
            continue;
        }
        if (subscription->m_records.size() >= subscription->m_capacity) {
            subscription->m_pending_dropped += 1;
            subscription->m_total_dropped += 1;
            continue;
        }
        bool was_empty = subscription->m_records.empty();
        subscription->m_records.push_back(record);
        if (was_empty && subscription->m_wake) {
            subscription->m_wake();
        }
    }
    while (m_ring.size() >= m_options.ring_lines && !m_ring.empty()) {
        m_ring.pop_front();
    }
    m_ring.push_back(std::move(record));
}

void LogSink::write_output(std::string_view bytes) {
    if (bytes.empty()) {
        return;
    }
    m_bytes_in += bytes.size();
    for (auto* subscription : m_subscribers) {
        if (!subscription->m_raw) {
            continue;
        }
        if (subscription->m_bytes.size() + bytes.size() > subscription->m_capacity) {
            subscription->m_pending_dropped += bytes.size();
            subscription->m_total_dropped += bytes.size();
            continue;
        }
        bool was_empty = subscription->m_bytes.empty();
        subscription->m_bytes.append(bytes);
        if (was_empty && subscription->m_wake) {
            subscription->m_wake();
        }
    }
    // One timestamp per chunk: lines read together arrived together, and
    // formatting a time per line would dominate a log flood.
    const WallTime now = m_clock.wall_now();
    const std::string stamp = m_file ? format_time(now) : std::string();
    while (!bytes.empty()) {
        size_t newline = bytes.find('\n');
        if (newline == std::string_view::npos) {
            m_partial.append(bytes);
            break;
        }
        std::string_view line = bytes.substr(0, newline);
        bytes.remove_prefix(newline + 1);
        if (!m_partial.empty()) {
            m_partial.append(line);
            std::string_view whole = m_partial;
            if (!whole.empty() && whole.back() == '\r') {
                whole.remove_suffix(1);
            }
            // An over-long line was already cut below; emit the rest.
            emit(LogStream::Output, whole, now, stamp);
            m_partial.clear();
        } else {
            if (!line.empty() && line.back() == '\r') {
                line.remove_suffix(1);
            }
            while (line.size() > m_options.max_line_bytes) {
                emit(LogStream::Output, line.substr(0, m_options.max_line_bytes), now, stamp);
                line.remove_prefix(m_options.max_line_bytes);
            }
            emit(LogStream::Output, line, now, stamp);
        }
    }
    while (m_partial.size() >= m_options.max_line_bytes) {
        emit(LogStream::Output, std::string_view(m_partial).substr(0, m_options.max_line_bytes),
             now, stamp);
        m_partial.erase(0, m_options.max_line_bytes);
    }
}

void LogSink::write_system(std::string_view line) {
    const WallTime now = m_clock.wall_now();
    emit(LogStream::System, line, now, m_file ? format_time(now) : std::string());
}

void LogSink::flush_partial() {
    if (!m_partial.empty()) {
        std::string_view line = m_partial;
        if (line.back() == '\r') {
            line.remove_suffix(1);
        }
        const WallTime now = m_clock.wall_now();
        emit(LogStream::Output, line, now, m_file ? format_time(now) : std::string());
        m_partial.clear();
    }
    flush();
}

std::vector<LogRecord> LogSink::tail(size_t n) const {
    size_t count = n == 0 ? m_ring.size() : std::min(n, m_ring.size());
    return std::vector<LogRecord>(m_ring.end() - static_cast<std::ptrdiff_t>(count), m_ring.end());
}

std::vector<LogRecord> LogSink::since(uint64_t after_seq) const {
    auto it = std::upper_bound(m_ring.begin(), m_ring.end(), after_seq,
                               [](uint64_t seq, const LogRecord& r) { return seq < r.seq; });
    return std::vector<LogRecord>(it, m_ring.end());
}

std::unique_ptr<LogSubscription> LogSink::subscribe(size_t capacity, std::function<void()> wake) {
    std::unique_ptr<LogSubscription> subscription(new LogSubscription());
    subscription->m_sink = this;
    subscription->m_capacity = std::max<size_t>(capacity, 1);
    subscription->m_wake = std::move(wake);
    m_subscribers.push_back(subscription.get());
    return subscription;
}

std::unique_ptr<LogSubscription> LogSink::subscribe_raw(size_t capacity_bytes,
                                                        std::function<void()> wake) {
    auto subscription = subscribe(capacity_bytes, std::move(wake));
    subscription->m_raw = true;
    return subscription;
}

void LogSink::unsubscribe(LogSubscription* subscription) {
    std::erase(m_subscribers, subscription);
}

}  // namespace locald::host
