// host/service_machine.h — the supervisor's decisions, without any I/O.
//
// Contract: a pure state machine. It is fed events (start/stop/restart
// requests, spawn results, exit of the main process, "nothing left" of the
// process tree, probe results) and the passage of time (`on_tick` with the
// injected Clock); it answers with Actions for the driver (Supervisor) to
// perform and with `next_deadline()` for the driver's timer. Every rule of
// restart policy, backoff, min_uptime, max_restarts, stop escalation and probe
// timing lives here, so tests drive it exactly with a ManualClock.
// The driver must perform the actions in order, and report back:
//   Spawn        → spawned(pid) or spawn_failed(reason)
//   RunProbe     → probe_result(ok, detail) later (or never if cancelled by a
//                  later CancelProbe / new run)
//   Signal/Kill  → main_exited(...) and tree_empty() as they happen
// `tree_empty()` may be reported only after `main_exited()`.
#pragma once

#include <sys/types.h>

#include <csignal>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "host/clock.h"
#include "host/probe.h"
#include "host/restart_policy.h"
#include "host/service_state.h"

namespace locald::host {

struct MachineAction {
    enum class Kind {
        Spawn,         // start a new run of the ExecPlan
        Signal,        // send `signal` to everything of the current run
        Kill,          // SIGKILL everything of the current run
        RunProbe,      // run one attempt of the (active) probe
        CancelProbe,   // abandon any attempt in flight
        StateChanged,  // status() changed: notify observers
    };
    Kind kind;
    int signal = 0;
};

struct MachineConfig {
    RestartPolicy restart;
    std::optional<ProbeSpec> probe;  // none: running as soon as spawned
    int stop_signal = SIGTERM;
    Millis stop_timeout{10'000};
};

class ServiceMachine {
public:
    ServiceMachine(MachineConfig config, const Clock& clock, RandomSource random);

    // Requests. start() from pending/stopped/exited/failed; restart() from any
    // state. Both reset the restart counters. stop() from any state; a stop
    // during a backoff wait cancels it.
    void start();
    void stop();
    void restart();

    // Driver reports.
    void spawned(pid_t pid);
    void spawn_failed(std::string reason);
    void main_exited(ExitInfo info);
    void tree_empty();
    void probe_result(bool ok, std::string detail);
    // A passive probe's event (log line matched, READY=1 received).
    void passive_ready(std::string detail);
    // Time passed: fires due deadlines (backoff end, stop escalation, probe
    // schedule, passive-probe deadline).
    void on_tick();

    // Earliest time on_tick() has something to do; nullopt = nothing pending.
    std::optional<SteadyTime> next_deadline() const;

    // Actions produced since the last call (in order).
    std::vector<MachineAction> take_actions();

    const ServiceStatus& status() const { return m_status; }
    const MachineConfig& config() const { return m_config; }
    // Replaces the config (a re-applied project); takes effect at the next run.
    void set_config(MachineConfig config) { m_config = std::move(config); }

private:
    enum class Phase {
        Idle,         // pending / stopped / exited / failed
        Backoff,      // waiting to spawn
        Up,           // process running
        Terminating,  // ending the run
    };
    enum class EndReason { None, StopRequested, RestartRequested, MainExited, ProbeFailed };

    void do_spawn();
    void begin_terminate(EndReason reason);
    void finish_run();
    void set_state(ServiceState state);
    void emit(MachineAction::Kind kind, int signal = 0);
    void schedule_probe(SteadyTime at);
    void mark_ready(std::string_view detail);
    void reset_counters();

    MachineConfig m_config;
    MachineConfig m_run_config;  // the config the current run started with
    const Clock& m_clock;
    RandomSource m_random;
    ServiceStatus m_status;
    std::vector<MachineAction> m_actions;

    Phase m_phase = Phase::Idle;
    EndReason m_end_reason = EndReason::None;
    bool m_main_alive = false;
    bool m_start_after_stop = false;
    SteadyTime m_run_started{};
    std::optional<SteadyTime> m_spawn_at;  // backoff end
    std::optional<SteadyTime> m_kill_at;   // stop escalation
    std::optional<SteadyTime> m_probe_at;  // next active probe attempt
    std::optional<SteadyTime> m_passive_deadline;
    bool m_probe_in_flight = false;
    bool m_ready = false;
    int m_probe_failures = 0;
    std::string m_end_detail;
    SteadyTime m_end_time{};
    bool m_changed = false;
};

}  // namespace locald::host
