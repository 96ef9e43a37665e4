// host/probe.h — readiness and liveness probes of a supervised service.
//
// Contract: a ProbeSpec is plain data. Semantics follow docker's healthcheck:
//   - active probes (http, tcp, exec) run every `interval`, the first one
//     `interval` after the process started; an attempt slower than `timeout`
//     fails;
//   - failures during `start_period` do not count; a success during it makes
//     the service ready at once;
//   - after `start_period`, `retries` consecutive failures fail the probe:
//     before ready this ends the run as a failure (restart policy applies),
//     after ready (liveness) the same — the service is restarted under its
//     policy;
//   - passive probes (log, notify) make the service ready on their event; they
//     fail when no event came within `start_period + interval * retries`, and
//     have no liveness phase.
// A service with a port and no probe gets `ProbeSpec::port_open(port)` (tcp) —
// the daemon decides that; this header only offers the factory.
// The runners (ActiveProbe, LogMatcher) live on the supervisor's event loop.
// Depends on base only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace locald::base {
class EventLoop;
}

namespace locald::host {

enum class ProbeKind {
    Http,    // GET `http_path` on 127.0.0.1:`port`; 2xx/3xx is success
    Tcp,     // connect to 127.0.0.1:`port` succeeds
    Exec,    // `exec_argv` with the service's env and cwd exits 0
    Log,     // a line of the service's output matches `log_pattern`
    Notify,  // READY=1 on the service's NOTIFY_SOCKET from one of its processes
};

std::string_view to_string(ProbeKind kind);

struct ProbeSpec {
    ProbeKind kind = ProbeKind::Tcp;
    uint16_t port = 0;                   // http, tcp
    std::string http_path = "/";         // http; must start with '/'
    std::vector<std::string> exec_argv;  // exec; argv[0] resolved with the service PATH
    // log: a substring, or `/regex/` (ECMAScript syntax, searched anywhere in
    // the line, ANSI escape sequences stripped before matching).
    std::string log_pattern;
    std::chrono::milliseconds interval{1000};
    std::chrono::milliseconds timeout{1000};
    std::chrono::milliseconds start_period{0};
    int retries = 3;  // >= 1
    // Appended to a failure's reason: what to check (the implicit port
    // probe asks whether the service listens on $PORT).
    std::string failure_hint;

    bool is_active() const {
        return kind == ProbeKind::Http || kind == ProbeKind::Tcp || kind == ProbeKind::Exec;
    }

    // The implicit readiness (and liveness) of a service with a port and no
    // probe: a connect every `interval`, failing after kPortOpenBudget of
    // misses in a row.
    static constexpr std::chrono::milliseconds kPortOpenBudget{60'000};
    static ProbeSpec port_open(uint16_t port,
                               std::chrono::milliseconds interval = std::chrono::milliseconds(100));

    // Checks ranges and required fields; InvalidArgument naming the field.
    base::Result<void> validate() const;
};

// One probe attempt's answer. `detail` is the human reason for a failure
// ("connect 127.0.0.1:8080: Connection refused", "http 503", "exit code 2").
struct ProbeOutcome {
    bool ok = false;
    std::string detail;
};

// Runs attempts of an active probe asynchronously on an event loop. At most one
// attempt is in flight; `run_once` while one is in flight is ignored. The
// callback fires exactly once per attempt, from the loop, and never after
// `cancel()` or destruction (destruction kills an exec attempt's process group
// and reaps it).
class ActiveProbe {
public:
    using Callback = std::function<void(ProbeOutcome)>;
    // `env`/`cwd` are the service's, used by exec probes.
    static base::Result<std::unique_ptr<ActiveProbe>> create(base::EventLoop& loop, ProbeSpec spec,
                                                             std::vector<std::string> env,
                                                             std::string cwd);
    virtual ~ActiveProbe() = default;
    virtual void run_once(Callback done) = 0;
    virtual void cancel() = 0;
    virtual bool in_flight() const = 0;
};

// Matches log lines for a Log probe: substring, or `/regex/`.
class LogMatcher {
public:
    static base::Result<LogMatcher> create(std::string_view pattern);
    bool matches(std::string_view line) const;

private:
    std::string m_substring;
    std::optional<std::regex> m_regex;
};

// Removes ANSI CSI/OSC escape sequences (colours, cursor moves) from a line.
std::string strip_ansi(std::string_view line);

}  // namespace locald::host
