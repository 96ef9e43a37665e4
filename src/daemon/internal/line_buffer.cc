#include "daemon/internal/line_buffer.h"

namespace locald::daemon::internal {

std::optional<std::string> LineBuffer::next_line() {
    size_t from = m_scan > m_start ? m_scan : m_start;
    size_t newline = m_data.find('\n', from);
    if (newline == std::string::npos) {
        m_scan = m_data.size();
        // Compact once the dead prefix dominates, keeping appends amortised O(1).
        if (m_start > 0 && m_start * 2 >= m_data.size()) {
            m_data.erase(0, m_start);
            m_scan -= m_start;
            m_start = 0;
        }
        return std::nullopt;
    }
    std::string line = m_data.substr(m_start, newline - m_start);
    m_start = newline + 1;
    m_scan = m_start;
    if (m_start == m_data.size()) {
        m_data.clear();
        m_start = 0;
        m_scan = 0;
    }
    return line;
}

}  // namespace locald::daemon::internal
