// host/log_sink.h — a service's output: ring buffer, rotated file, live
// subscribers.
//
// Contract:
//   - The producer (the supervisor reading the PTY) is never blocked: writes go
//     to memory (the ring), to a userspace buffer flushed to the file in large
//     writes, and to subscriber queues that are bounded; a full queue drops
//     lines and the subscriber later receives one Gap record saying how many.
//   - Lines are split on '\n' (a trailing '\r' is removed); a partial line is
//     held until its newline, `flush_partial()`, or `max_line_bytes` (then it
//     is cut into records of that size). The supervisor calls flush_partial()
//     when the PTY reaches EOF so the last unterminated line is kept.
//   - The ring keeps the last `ring_lines` records (default 10,000).
//   - The file (optional) is rotated by size: `path` → `path.1` … `path.N`
//     (N = `file_keep`), each at most about `file_max_bytes`. Each line is
//     written as "<RFC3339 UTC timestamp with ms> <stream> <text>\n".
//     The file is created 0600.
//   - Raw subscribers get the PTY bytes unchanged (for `attach`), bounded the
//     same way (a gap is reported as dropped byte count).
//   - Single-threaded: all calls on the event loop thread. Wakeup callbacks
//     run synchronously inside the producer's call and must not write to the
//     sink or block; they typically arm a write watch on the consumer's fd.
// Depends on base only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "host/clock.h"

namespace locald::host {

enum class LogStream {
    Output,  // the service's PTY (stdout and stderr are one stream on a PTY)
    System,  // locald's own notes about the service: "exited with code 1", …
    Gap,     // subscriber-only: `text` says how many records were dropped
};

std::string_view to_string(LogStream stream);

struct LogRecord {
    uint64_t seq = 0;  // 1, 2, … per sink; a Gap record carries the next seq
    WallTime time;
    LogStream stream = LogStream::Output;
    std::string text;      // without the newline
    uint64_t dropped = 0;  // Gap only
};

struct LogSinkOptions {
    size_t ring_lines = 10'000;
    std::string file_path;  // empty: no file
    uint64_t file_max_bytes = 10ull << 20;
    int file_keep = 3;                     // rotated files kept beside the live one
    size_t file_buffer_bytes = 256 << 10;  // flushed when full or on flush()
    size_t max_line_bytes = 64 << 10;
};

class LogSink;

// A live reader. Obtained from LogSink::subscribe*; dropping it unsubscribes.
class LogSubscription {
public:
    ~LogSubscription();
    LogSubscription(const LogSubscription&) = delete;
    LogSubscription& operator=(const LogSubscription&) = delete;

    // Line mode: moves queued records into `out`, followed by one Gap record
    // when records were dropped since the last drain (drops happen only while
    // the queue is full, so the gap is exactly there); returns how many.
    size_t drain(std::vector<LogRecord>& out);
    // Raw mode: moves queued bytes into `out`; returns dropped bytes since the
    // last call (the consumer decides how to show the gap).
    uint64_t drain_raw(std::string& out);
    bool empty() const;
    uint64_t total_dropped() const { return m_total_dropped; }

private:
    friend class LogSink;
    LogSubscription() = default;
    LogSink* m_sink = nullptr;
    bool m_raw = false;
    size_t m_capacity = 0;  // records (line mode) or bytes (raw mode)
    std::deque<LogRecord> m_records;
    std::string m_bytes;
    uint64_t m_pending_dropped = 0;
    uint64_t m_total_dropped = 0;
    std::function<void()> m_wake;
};

class LogSink {
public:
    static base::Result<std::unique_ptr<LogSink>> create(LogSinkOptions options,
                                                         const Clock& clock);
    ~LogSink();

    // Raw PTY bytes: fed to raw subscribers, then split into lines.
    void write_output(std::string_view bytes);
    // One line of locald's own commentary about the service.
    void write_system(std::string_view line);
    // Emits a held partial line (on PTY EOF), then flushes the file buffer.
    void flush_partial();
    // Writes the file buffer out now. Errors are remembered in file_error().
    void flush();
    // Bytes waiting in the file buffer (written at file_buffer_bytes or flush()).
    size_t buffered_bytes() const { return m_file_buffer.size(); }

    // The last `n` ring records (oldest first); n = 0 means all.
    std::vector<LogRecord> tail(size_t n) const;
    // Ring records with seq > `after_seq`.
    std::vector<LogRecord> since(uint64_t after_seq) const;
    uint64_t last_seq() const { return m_next_seq - 1; }
    uint64_t bytes_written() const { return m_bytes_in; }

    // Live line records, at most `capacity` queued. `wake` is called when the
    // queue becomes non-empty.
    std::unique_ptr<LogSubscription> subscribe(size_t capacity, std::function<void()> wake);
    // Live raw bytes, at most `capacity_bytes` queued.
    std::unique_ptr<LogSubscription> subscribe_raw(size_t capacity_bytes,
                                                   std::function<void()> wake);

    // The first file error (e.g. disk full); the sink keeps serving the ring.
    const std::optional<base::Error>& file_error() const { return m_file_error; }

    // Hands each record to a per-line hook before storing it (used by the
    // supervisor for log probes). One hook; nullptr removes it.
    void set_line_hook(std::function<void(const LogRecord&)> hook) {
        m_line_hook = std::move(hook);
    }

private:
    friend class LogSubscription;
    LogSink(LogSinkOptions options, const Clock& clock);
    void emit(LogStream stream, std::string_view text, WallTime time, std::string_view stamp);
    void append_file(const LogRecord& record, std::string_view stamp);
    void rotate();
    base::Result<void> open_file();
    void unsubscribe(LogSubscription* subscription);

    LogSinkOptions m_options;
    const Clock& m_clock;
    std::deque<LogRecord> m_ring;
    uint64_t m_next_seq = 1;
    uint64_t m_bytes_in = 0;
    std::string m_partial;
    base::UniqueFd m_file;
    uint64_t m_file_size = 0;
    std::string m_file_buffer;
    std::optional<base::Error> m_file_error;
    std::vector<LogSubscription*> m_subscribers;
    std::function<void(const LogRecord&)> m_line_hook;
};

}  // namespace locald::host
