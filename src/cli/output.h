// cli/output.h — human output helpers shared by the service commands:
// terminal detection, stable per-service colours, log-line prefixes, tables,
// and short durations. Nothing here talks to the daemon.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/json.h"

namespace locald::cli {

// True when `fd` is a terminal and colour is not disabled (NO_COLOR set, or
// TERM=dumb).
bool use_colour(int fd);

// A stable ANSI colour (SGR parameter) for a service name: the same name gets
// the same colour in every run and every command.
std::string_view colour_for(std::string_view name);

// "HH:MM:SS name | " (local time), padded so names line up; with colour the
// prefix is coloured.
std::string log_prefix(std::int64_t unix_ms, std::string_view name, size_t name_width, bool colour);

// "1.2s", "340ms", "2m03s".
std::string short_duration(std::int64_t ms);

// `text` on one line: each run of control characters (newlines, tabs, …) and
// the blanks around it becomes one space, so a reason quoting a multi-line
// command line cannot break a table row or a progress line.
std::string one_line(std::string_view text);

// Left-aligned columns separated by two spaces; the first row is the header.
// Cells are printed one_line().
void print_table(const std::vector<std::vector<std::string>>& rows);

// Parses "10s", "5m", "2h", "1d", "500ms" into milliseconds; -1 when malformed.
std::int64_t parse_since(std::string_view text);

// Per-service progress of `up`/`start`/`restart`/`down`, fed with the
// daemon's service events (the status JSON plus "reason"/"waiting"). On a
// terminal the rows are redrawn in place; otherwise one plain line is printed
// per state change, e.g. "web: ready (1.2s)".
class Progress {
public:
    Progress(bool tty, bool colour);
    void update(const base::Json& service);
    // Final redraw; prints the reasons of failed services.
    void done();

private:
    struct Row {
        std::string name;
        std::string state;
        std::string reason;
        std::string detail;  // pid/port
        std::int64_t changed_ms = 0;
        // Still in the state it had when the command began: no time to show
        // (a re-applied ready service is not "ready 0ms").
        bool initial = true;
    };
    void redraw();
    std::string render(const Row& row) const;
    std::int64_t elapsed_ms() const;

    bool m_tty;
    bool m_colour;
    std::chrono::steady_clock::time_point m_begin;
    std::chrono::system_clock::time_point m_begin_wall;  // vs the daemon's started_at
    size_t m_columns = 0;  // the terminal's width (0: unknown); a wrapped row breaks the redraw
    std::vector<Row> m_rows;
    size_t m_drawn = 0;
};

// Prints log lines from the daemon ({"service","time","stream","text"}) as
// "HH:MM:SS name | text". Names drop the project when all lines share one.
class LogPrinter {
public:
    LogPrinter(bool colour, std::vector<std::string> qualified_names);
    void print(const base::Json& line);

private:
    std::string display(const std::string& qualified) const;
    bool m_colour;
    bool m_single_project = true;
    size_t m_width = 0;
};

}  // namespace locald::cli
