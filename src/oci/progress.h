// oci/progress.h — progress events of a pull or push, and three renderers.
//
// Contract: the library reports what happens through a `ProgressSink`
// (called from worker threads; sinks serialise themselves). Renderers:
// `TtyProgress` redraws one bar per layer with bytes and rate (ANSI, for a
// terminal), `LineProgress` prints one line per finished layer (logs, pipes),
// `JsonProgress` prints one JSON object per event per line — the form the
// daemon relays during `up`. None of them writes secrets: events carry
// digests, sizes and registry hosts only.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace locald::oci {

enum class ProgressKind {
    Resolving,   // ref → registry (message: host)
    Resolved,    // digest of the root manifest/index known
    LayerStart,  // a blob is needed (size; offset = bytes already in a partial ingest)
    LayerSkip,   // already in the store (or mounted on push)
    LayerBytes,  // offset = bytes written so far
    LayerRetry,  // message = why
    LayerDone,   // committed (verified)
    Done,        // whole operation done (message: summary)
};

struct ProgressEvent {
    ProgressKind kind = ProgressKind::Resolving;
    std::string operation;  // "pull" / "push"
    std::string ref;
    std::string digest;  // blob or manifest digest
    int64_t size = -1;
    int64_t offset = 0;
    std::string message;
};

std::string_view to_string(ProgressKind kind);
// {"event":"layer-bytes","op":"pull","ref":…,"digest":…,"size":…,"offset":…,"message":…}
std::string progress_event_json(const ProgressEvent& event);

class ProgressSink {
public:
    virtual ~ProgressSink() = default;
    virtual void on_event(const ProgressEvent& event) = 0;
};

class JsonProgress : public ProgressSink {
public:
    explicit JsonProgress(FILE* out) : m_out(out) {}
    void on_event(const ProgressEvent& event) override;

private:
    FILE* m_out;
    std::mutex m_mutex;
};

class LineProgress : public ProgressSink {
public:
    explicit LineProgress(FILE* out) : m_out(out) {}
    void on_event(const ProgressEvent& event) override;

private:
    FILE* m_out;
    std::mutex m_mutex;
    std::map<std::string, std::chrono::steady_clock::time_point> m_started;
};

class TtyProgress : public ProgressSink {
public:
    explicit TtyProgress(FILE* out) : m_out(out) {}
    void on_event(const ProgressEvent& event) override;

private:
    struct Row {
        std::string digest;
        int64_t size = -1;
        int64_t offset = 0;
        int64_t start_offset = 0;
        std::string state;  // "waiting", "downloading", "done", "exists", "retrying"
        std::chrono::steady_clock::time_point started;
        std::chrono::steady_clock::time_point finished;
    };
    void redraw(bool force);

    FILE* m_out;
    std::mutex m_mutex;
    std::vector<Row> m_rows;
    size_t m_drawn = 0;
    std::chrono::steady_clock::time_point m_last_draw;
};

// "12.3 MB", "512 B".
std::string human_bytes(int64_t bytes);

}  // namespace locald::oci
