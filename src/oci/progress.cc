#include "oci/progress.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/json.h"

namespace locald::oci {

namespace {

std::string short_digest(const std::string& digest) {
    auto colon = digest.find(':');
    std::string hex = colon == std::string::npos ? digest : digest.substr(colon + 1);
    return hex.substr(0, 12);
}

double seconds_between(std::chrono::steady_clock::time_point a,
                       std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

}  // namespace

std::string_view to_string(ProgressKind kind) {
    switch (kind) {
        case ProgressKind::Resolving:
            return "resolving";
        case ProgressKind::Resolved:
            return "resolved";
        case ProgressKind::LayerStart:
            return "layer-start";
        case ProgressKind::LayerSkip:
            return "layer-skip";
        case ProgressKind::LayerBytes:
            return "layer-bytes";
        case ProgressKind::LayerRetry:
            return "layer-retry";
        case ProgressKind::LayerDone:
            return "layer-done";
        case ProgressKind::Done:
            return "done";
    }
    return "unknown";
}

std::string progress_event_json(const ProgressEvent& event) {
    base::Json json = base::Json::object();
    json.set("event", std::string(to_string(event.kind)));
    json.set("op", event.operation);
    json.set("ref", event.ref);
    if (!event.digest.empty()) {
        json.set("digest", event.digest);
    }
    if (event.size >= 0) {
        json.set("size", event.size);
    }
    json.set("offset", event.offset);
    if (!event.message.empty()) {
        json.set("message", event.message);
    }
    return json.dump();
}

std::string human_bytes(int64_t bytes) {
    const char* units[] = {"B", "kB", "MB", "GB", "TB"};
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1000 && unit < 4) {
        value /= 1000;
        ++unit;
    }
    return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, units[unit]);
}

void JsonProgress::on_event(const ProgressEvent& event) {
    std::lock_guard lock(m_mutex);
    std::string line = progress_event_json(event);
    std::fprintf(m_out, "%s\n", line.c_str());
    std::fflush(m_out);
}

void LineProgress::on_event(const ProgressEvent& event) {
    std::lock_guard lock(m_mutex);
    auto now = std::chrono::steady_clock::now();
    std::string line;
    switch (event.kind) {
        case ProgressKind::Resolving:
            line = fmt::format("{} {}: {}", event.operation == "push" ? "pushing" : "pulling",
                               event.ref, event.message);
            break;
        case ProgressKind::Resolved:
            line = fmt::format("{}: resolved to {}", event.ref, event.digest);
            break;
        case ProgressKind::LayerStart:
            m_started[event.digest] = now;
            return;
        case ProgressKind::LayerSkip:
            line = fmt::format("{}: {}", short_digest(event.digest),
                               event.message.empty() ? "already present" : event.message);
            break;
        case ProgressKind::LayerBytes:
            return;
        case ProgressKind::LayerRetry:
            line = fmt::format("{}: retrying: {}", short_digest(event.digest), event.message);
            break;
        case ProgressKind::LayerDone: {
            double seconds = 0;
            if (auto it = m_started.find(event.digest); it != m_started.end()) {
                seconds = seconds_between(it->second, now);
            }
            line = fmt::format("{}: {} {} in {:.1f}s", short_digest(event.digest),
                               event.operation == "push" ? "pushed" : "downloaded",
                               human_bytes(event.size), seconds);
            break;
        }
        case ProgressKind::Done:
            line = event.message;
            break;
    }
    std::fprintf(m_out, "%s\n", line.c_str());
    std::fflush(m_out);
}

void TtyProgress::on_event(const ProgressEvent& event) {
    std::lock_guard lock(m_mutex);
    auto now = std::chrono::steady_clock::now();
    auto row = std::find_if(m_rows.begin(), m_rows.end(),
                            [&](const Row& r) { return r.digest == event.digest; });
    auto ensure_row = [&]() -> Row& {
        if (row == m_rows.end()) {
            m_rows.push_back(Row{event.digest, event.size, 0, 0, "waiting", now, now});
            row = m_rows.end() - 1;
        }
        return *row;
    };
    switch (event.kind) {
        case ProgressKind::Resolving:
        case ProgressKind::Resolved:
        case ProgressKind::Done: {
            // Plain lines above the bars: clear the bars, print, redraw. The
            // final line goes below the finished bars, which stay visible.
            if (m_drawn > 0 && event.kind != ProgressKind::Done) {
                std::fprintf(m_out, "\x1b[%zuF\x1b[J", m_drawn);
                m_drawn = 0;
            }
            std::string line = event.kind == ProgressKind::Resolving
                                   ? fmt::format("pulling {} from {}", event.ref, event.message)
                               : event.kind == ProgressKind::Resolved
                                   ? fmt::format("{}: {}", event.ref, event.digest)
                                   : event.message;
            if (event.operation == "push" && event.kind == ProgressKind::Resolving) {
                line = fmt::format("pushing {} to {}", event.ref, event.message);
            }
            std::fprintf(m_out, "%s\n", line.c_str());
            if (event.kind != ProgressKind::Done) {
                redraw(true);
            } else {
                m_rows.clear();
                m_drawn = 0;
            }
            std::fflush(m_out);
            return;
        }
        case ProgressKind::LayerStart: {
            Row& r = ensure_row();
            r.state = "downloading";
            r.size = event.size;
            r.offset = event.offset;
            r.start_offset = event.offset;
            r.started = now;
            break;
        }
        case ProgressKind::LayerSkip: {
            Row& r = ensure_row();
            r.state = event.message.empty() ? "exists" : event.message;
            r.size = event.size;
            r.offset = event.size;
            break;
        }
        case ProgressKind::LayerBytes: {
            Row& r = ensure_row();
            r.offset = event.offset;
            if (r.state == "retrying") {
                r.state = "downloading";
            }
            break;
        }
        case ProgressKind::LayerRetry:
            ensure_row().state = "retrying";
            break;
        case ProgressKind::LayerDone: {
            Row& r = ensure_row();
            r.state = "done";
            r.offset = r.size >= 0 ? r.size : r.offset;
            r.finished = now;
            break;
        }
    }
    redraw(event.kind != ProgressKind::LayerBytes);
}

void TtyProgress::redraw(bool force) {
    auto now = std::chrono::steady_clock::now();
    if (!force && now - m_last_draw < std::chrono::milliseconds(100)) {
        return;
    }
    m_last_draw = now;
    if (m_drawn > 0) {
        std::fprintf(m_out, "\x1b[%zuF", m_drawn);
    }
    for (const Row& row : m_rows) {
        constexpr int kWidth = 30;
        double fraction =
            row.size > 0 ? std::min(1.0, static_cast<double>(row.offset) / row.size) : 1.0;
        int filled = static_cast<int>(fraction * kWidth);
        std::string bar(static_cast<size_t>(filled), '=');
        if (filled < kWidth) {
            bar += '>';
            bar += std::string(static_cast<size_t>(kWidth - filled - 1), ' ');
        }
        auto until = row.state == "done" ? row.finished : now;
        double seconds = seconds_between(row.started, until);
        double rate =
            seconds > 0.05 ? static_cast<double>(row.offset - row.start_offset) / seconds : 0.0;
        std::string detail;
        if (row.state == "downloading" || row.state == "retrying" || row.state == "done") {
            detail = fmt::format("{} / {}  {}/s", human_bytes(row.offset),
                                 human_bytes(std::max<int64_t>(row.size, 0)),
                                 human_bytes(static_cast<int64_t>(rate)));
        } else {
            detail = human_bytes(std::max<int64_t>(row.size, 0));
        }
        std::fprintf(m_out, "\x1b[2K%s [%s] %-11s %s\n", short_digest(row.digest).c_str(),
                     bar.c_str(), row.state.c_str(), detail.c_str());
    }
    m_drawn = m_rows.size();
    std::fflush(m_out);
}

}  // namespace locald::oci
