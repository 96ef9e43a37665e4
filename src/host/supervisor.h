// host/supervisor.h — one supervised service: spawn, readiness, restarts,
// logs, stop. The public entry point of src/host for the daemon.
//
// Contract:
//   - A Supervisor runs one ExecPlan at a time under its own PTY, session and
//     process group (host/pty.h), tracks everything that run starts
//     (host/process_tree.h: a cgroup per run when one can be made, else /proc
//     tracking — the supervising process must be a child subreaper, see
//     become_subreaper()), and applies the decisions of ServiceMachine
//     (restart policy with backoff, min_uptime, max_restarts, probes, stop
//     escalation) using the injected Clock and base::EventLoop timers.
//   - All methods and callbacks run on the event loop's thread. Requests
//     (start/stop/restart) return at once; progress is reported through
//     observers and status().
//   - Stop: `plan.stop_signal` to the process group and every tracked
//     process, after `plan.stop_timeout` SIGKILL to all of them; the state is
//     `stopped` only once nothing of the run is left (all reaped).
//   - A run ending on its own: leftovers of the run are ended the same way
//     before a restart, so there are never two copies of a service.
//   - Output: the PTY master is drained (non-blocking, 64 KiB reads) into the
//     LogSink; after the main process exits the master is read until EIO so
//     the last lines are kept. A slow log consumer never blocks the service.
//   - Exec failure (command not found, permission denied, bad cwd) makes the
//     service `failed` at once with the real reason in status().reason and in
//     the log (System stream) — no retry loop, no hang.
//   - Notify: unless disabled, a datagram socket is bound per service and
//     NOTIFY_SOCKET is set in the child's env; READY=1 makes a Notify-probed
//     service ready when the sender's pid (SCM_CREDENTIALS) belongs to the run.
//   - Destruction SIGKILLs whatever is left of the run and reaps it
//     synchronously (use stop() and wait for `stopped` for a graceful end).
// Depends on base only.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/event_loop.h"
#include "base/unique_fd.h"
#include "host/clock.h"
#include "host/exec_plan.h"
#include "host/log_sink.h"
#include "host/probe.h"
#include "host/process_tree.h"
#include "host/restart_policy.h"
#include "host/service_machine.h"
#include "host/service_state.h"

namespace locald::host {

struct SupervisorOptions {
    // "project:service"; used in messages and (sanitised) as the cgroup name.
    std::string name;
    ExecPlan plan;
    RestartPolicy restart;
    // Readiness, then liveness. None: `running` as soon as spawned. The
    // daemon passes ProbeSpec::port_open(port) for a service with a port and
    // no probe.
    std::optional<ProbeSpec> probe;
    LogSinkOptions logs;
    // Bind a NOTIFY_SOCKET for the service. Path: `notify_socket_path`, or an
    // abstract socket "@locald/<pid>/<n>" when empty.
    bool notify_socket = true;
    std::string notify_socket_path;
    TrackMode track = TrackMode::Auto;
    // Sent to the service's main process if the supervising thread dies
    // (PR_SET_PDEATHSIG): the backstop for a daemon killed with SIGKILL whose
    // services ignore the PTY hangup. 0 = none. The supervisor must then stay
    // on one long-lived thread (the daemon's event loop thread).
    int parent_death_signal = 0;
};

class Supervisor {
public:
    using Observer = std::function<void(const ServiceStatus&)>;

    // Validates the options and opens the log sink (file) and notify socket.
    // Does not start anything: the state is `pending` until start().
    static base::Result<std::unique_ptr<Supervisor>> create(base::EventLoop& loop,
                                                            SupervisorOptions options,
                                                            const Clock& clock = real_clock(),
                                                            RandomSource random = {});
    ~Supervisor();
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    // From pending/stopped/exited/failed: a new run, counters reset.
    void start();
    // Graceful stop (stop_signal, stop_timeout, SIGKILL). Idempotent.
    void stop();
    // Stop (if running) then start, counters reset.
    void restart();

    // Replaces plan/policy/probe/logs options for the next run (a re-applied
    // project). The current run is not touched; call restart() to apply.
    base::Result<void> reconfigure(SupervisorOptions options);

    const ServiceStatus& status() const;
    const std::string& name() const { return m_options.name; }
    const SupervisorOptions& options() const { return m_options; }

    // Called after every status change (state, pid, restarts, reason).
    // Returns an id for remove_observer(). Observers may call any method.
    uint64_t add_observer(Observer observer);
    void remove_observer(uint64_t id);

    LogSink& logs() { return *m_logs; }

    // Attach support. Input goes to the PTY of the current run (as typed);
    // FailedPrecondition when no run is live. Returns bytes accepted.
    base::Result<size_t> write_input(std::string_view bytes);
    // Resizes the current PTY and remembers the size for later runs.
    base::Result<void> resize(PtySize size);

    // Live processes of the current run (main first when alive).
    std::vector<pid_t> processes();
    // Whether the current run uses a cgroup (else /proc tracking).
    bool uses_cgroup() const;
    // The NOTIFY_SOCKET value given to the service ("" when disabled).
    const std::string& notify_socket() const { return m_notify_name; }

private:
    Supervisor(base::EventLoop& loop, SupervisorOptions options, const Clock& clock,
               RandomSource random);
    base::Result<void> open_notify_socket();
    void perform_actions();
    void do_spawn();
    void on_pty_readable(uint32_t events);
    void drain_pty(bool until_eof);
    void close_pty();
    void schedule_flush();  // the log file buffer is written within kFileFlushDelay
    void on_main_exit();
    void poll_tree();
    void arm_deadline_timer();
    void arm_tree_poll(Millis every);
    void run_probe();
    void on_notify_readable();
    void on_log_line(const LogRecord& record);
    void notify_observers();
    void kill_everything_now();

    base::EventLoop& m_loop;
    SupervisorOptions m_options;
    const Clock& m_clock;
    ServiceMachine m_machine;
    std::unique_ptr<LogSink> m_logs;

    // The current run.
    pid_t m_pid = 0;
    base::UniqueFd m_pidfd;
    base::UniqueFd m_master;
    std::unique_ptr<ProcessTree> m_tree;
    std::unique_ptr<ActiveProbe> m_probe;
    std::optional<LogMatcher> m_log_matcher;
    bool m_main_exited = false;
    bool m_terminating = false;  // stop signal sent (or main gone): waiting for empty
    bool m_killing = false;      // SIGKILL stage: re-kill anything a scan finds
    bool m_log_matched = false;  // a log-probe line matched during this drain
    std::string m_read_buffer;
    ServiceState m_logged_state = ServiceState::Pending;
    // The backoff whose restart was logged: a run that ends on its own goes
    // from starting to starting again, so the state alone does not tell.
    std::optional<SteadyTime> m_logged_next_start;
    PtySize m_size;

    base::EventLoop::WatchId m_pty_watch = 0;
    base::EventLoop::WatchId m_pid_watch = 0;
    base::EventLoop::WatchId m_deadline_timer = 0;
    base::EventLoop::WatchId m_tree_timer = 0;
    base::EventLoop::WatchId m_flush_timer = 0;  // writes the log file buffer out
    base::EventLoop::WatchId m_notify_watch = 0;
    std::optional<SteadyTime> m_armed_deadline;
    Millis m_tree_poll_every{0};

    base::UniqueFd m_notify_fd;
    std::string m_notify_name;

    uint64_t m_next_observer = 1;
    std::vector<std::pair<uint64_t, Observer>> m_observers;
    std::shared_ptr<bool> m_alive = std::make_shared<bool>(true);
    bool m_in_actions = false;
};

}  // namespace locald::host
