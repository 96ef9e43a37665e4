// daemon/internal/line_buffer.h — NDJSON framing for the IPC.
//
// Bytes arrive in arbitrary chunks; complete lines come out. There is no line
// length limit by design (requests "of any size"): a line is buffered until its
// '\n' arrives. The consumed prefix is dropped lazily so a stream of small
// lines does not memmove the buffer on every line.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace locald::daemon::internal {

class LineBuffer {
public:
    void append(std::string_view bytes) { m_data.append(bytes); }
    // The next complete line without its '\n' (a trailing '\r' is kept), or
    // nothing until more bytes arrive.
    std::optional<std::string> next_line();
    // Bytes of an unfinished line (what a peer sent before closing mid-line).
    size_t pending() const { return m_data.size() - m_start; }

private:
    std::string m_data;
    size_t m_start = 0;
    size_t m_scan = 0;  // where to resume looking for '\n'
};

}  // namespace locald::daemon::internal
