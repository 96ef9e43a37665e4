#include "host/service_machine.h"

#include <fmt/format.h>

#include <algorithm>

namespace locald::host {
namespace {

std::string format_delay(Millis delay) {
    if (delay.count() < 1000) {
        return fmt::format("{}ms", delay.count());
    }
    return fmt::format("{:.1f}s", static_cast<double>(delay.count()) / 1000.0);
}

}  // namespace

ServiceMachine::ServiceMachine(MachineConfig config, const Clock& clock, RandomSource random)
    : m_config(std::move(config)),
      m_run_config(m_config),
      m_clock(clock),
      m_random(random ? std::move(random) : default_random_source()) {}

void ServiceMachine::emit(MachineAction::Kind kind, int signal) {
    m_actions.push_back(MachineAction{kind, signal});
}

void ServiceMachine::set_state(ServiceState state) {
    m_status.state = state;
    m_changed = true;
}

std::vector<MachineAction> ServiceMachine::take_actions() {
    if (m_changed) {
        // Observers hear about a change once, after the driver performed the
        // actions that led to it.
        emit(MachineAction::Kind::StateChanged);
        m_changed = false;
    }
    return std::exchange(m_actions, {});
}

void ServiceMachine::reset_counters() {
    m_status.restarts = 0;
    m_status.consecutive_failures = 0;
    m_changed = true;
}

void ServiceMachine::start() {
    switch (m_phase) {
        case Phase::Idle:
        case Phase::Backoff:
            reset_counters();
            m_spawn_at.reset();
            m_status.next_start_at.reset();
            do_spawn();
            break;
        case Phase::Up:
            break;  // already running: nothing to do
        case Phase::Terminating:
            // Whatever ends this run, a new one follows with fresh counters.
            m_end_reason = EndReason::RestartRequested;
            break;
    }
}

void ServiceMachine::stop() {
    switch (m_phase) {
        case Phase::Idle:
            if (m_status.state != ServiceState::Stopped) {
                m_status.reason.clear();
                set_state(ServiceState::Stopped);
            }
            break;
        case Phase::Backoff:
            m_phase = Phase::Idle;
            m_spawn_at.reset();
            m_status.next_start_at.reset();
            m_status.reason.clear();
            set_state(ServiceState::Stopped);
            break;
        case Phase::Up:
            begin_terminate(EndReason::StopRequested);
            break;
        case Phase::Terminating:
            m_end_reason = EndReason::StopRequested;
            if (m_status.state != ServiceState::Stopping) {
                set_state(ServiceState::Stopping);
            }
            break;
    }
}

void ServiceMachine::restart() {
    switch (m_phase) {
        case Phase::Idle:
        case Phase::Backoff:
            start();
            break;
        case Phase::Up:
            begin_terminate(EndReason::RestartRequested);
            break;
        case Phase::Terminating:
            m_end_reason = EndReason::RestartRequested;
            break;
    }
}

void ServiceMachine::do_spawn() {
    m_run_config = m_config;
    m_phase = Phase::Up;
    m_main_alive = false;
    m_ready = false;
    m_probe_failures = 0;
    m_probe_in_flight = false;
    m_probe_at.reset();
    m_passive_deadline.reset();
    m_kill_at.reset();
    m_spawn_at.reset();
    m_status.next_start_at.reset();
    m_end_reason = EndReason::None;
    m_end_detail.clear();
    emit(MachineAction::Kind::Spawn);
}

void ServiceMachine::spawned(pid_t pid) {
    if (m_phase != Phase::Up || m_main_alive) {
        return;
    }
    const SteadyTime now = m_clock.now();
    m_main_alive = true;
    m_run_started = now;
    m_status.pid = pid;
    m_status.started_at = m_clock.wall_now();
    m_status.ready_at.reset();
    m_status.reason.clear();
    const auto& probe = m_run_config.probe;
    if (!probe) {
        set_state(ServiceState::Running);
        return;
    }
    set_state(ServiceState::Starting);
    if (probe->is_active()) {
        schedule_probe(now + probe->interval);
    } else {
        m_passive_deadline = now + probe->start_period + probe->interval * probe->retries;
    }
}

void ServiceMachine::spawn_failed(std::string reason) {
    if (m_phase != Phase::Up || m_main_alive) {
        return;
    }
    // Retrying cannot fix "command not found" or a missing cwd: say so at
    // once instead of crash-looping through max_restarts.
    m_phase = Phase::Idle;
    m_status.pid = 0;
    m_status.reason = std::move(reason);
    set_state(ServiceState::Failed);
}

void ServiceMachine::main_exited(ExitInfo info) {
    if (!m_main_alive) {
        return;
    }
    m_main_alive = false;
    m_status.last_exit = info;
    m_status.pid = 0;
    m_changed = true;
    if (m_phase == Phase::Up) {
        m_end_detail = info.describe();
        begin_terminate(EndReason::MainExited);
    }
    // In Terminating the main process ending is expected; tree_empty() ends it.
}

void ServiceMachine::begin_terminate(EndReason reason) {
    const SteadyTime now = m_clock.now();
    m_phase = Phase::Terminating;
    m_end_reason = reason;
    m_end_time = now;
    if (m_probe_in_flight) {
        emit(MachineAction::Kind::CancelProbe);
        m_probe_in_flight = false;
    }
    m_probe_at.reset();
    m_passive_deadline.reset();
    // The main process may be gone (it exited on its own) while leftovers of
    // the run live on: they get the same graceful signal first.
    emit(MachineAction::Kind::Signal, m_run_config.stop_signal);
    m_kill_at = now + m_run_config.stop_timeout;
    set_state(ServiceState::Stopping);
}

void ServiceMachine::tree_empty() {
    if (m_phase != Phase::Terminating || m_main_alive) {
        return;
    }
    finish_run();
}

void ServiceMachine::finish_run() {
    m_kill_at.reset();
    m_status.pid = 0;
    m_changed = true;
    switch (m_end_reason) {
        case EndReason::None:
        case EndReason::StopRequested:
            m_phase = Phase::Idle;
            m_status.reason.clear();
            set_state(ServiceState::Stopped);
            return;
        case EndReason::RestartRequested:
            reset_counters();
            do_spawn();
            return;
        case EndReason::MainExited:
        case EndReason::ProbeFailed:
            break;
    }

    const bool probe_failed = m_end_reason == EndReason::ProbeFailed;
    const bool failed = probe_failed || (m_status.last_exit && m_status.last_exit->failed());
    const RestartPolicy& policy = m_run_config.restart;
    if (m_end_time - m_run_started >= policy.min_uptime) {
        // The run was healthy long enough: a new crash starts a new series.
        m_status.consecutive_failures = 0;
    }
    if (!should_restart(policy.mode, failed)) {
        m_phase = Phase::Idle;
        m_status.reason = m_end_detail;
        set_state(probe_failed ? ServiceState::Failed : ServiceState::Exited);
        return;
    }
    if (policy.max_restarts >= 0 && m_status.consecutive_failures >= policy.max_restarts) {
        m_phase = Phase::Idle;
        m_status.reason =
            fmt::format("gave up after {} restart{} in a row: {}", m_status.consecutive_failures,
                        m_status.consecutive_failures == 1 ? "" : "s", m_end_detail);
        set_state(ServiceState::Failed);
        return;
    }
    const Millis delay = backoff_delay(policy, m_status.consecutive_failures, m_random());
    m_status.consecutive_failures += 1;
    m_status.restarts += 1;
    m_phase = Phase::Backoff;
    m_spawn_at = m_clock.now() + delay;
    m_status.next_start_at = m_spawn_at;
    m_status.reason = fmt::format("{}; restarting in {}", m_end_detail, format_delay(delay));
    set_state(ServiceState::Starting);
}

void ServiceMachine::schedule_probe(SteadyTime at) {
    m_probe_at = at;
}

void ServiceMachine::mark_ready(std::string_view detail) {
    (void)detail;
    m_ready = true;
    m_probe_failures = 0;
    m_passive_deadline.reset();
    m_status.ready_at = m_clock.wall_now();
    m_status.reason.clear();
    set_state(ServiceState::Ready);
}

void ServiceMachine::probe_result(bool ok, std::string detail) {
    if (m_phase != Phase::Up || !m_probe_in_flight || !m_run_config.probe) {
        return;
    }
    m_probe_in_flight = false;
    const ProbeSpec& probe = *m_run_config.probe;
    const SteadyTime now = m_clock.now();
    if (ok) {
        m_probe_failures = 0;
        if (!m_ready) {
            mark_ready(detail);
        } else if (!m_status.reason.empty()) {
            m_status.reason.clear();
            m_changed = true;
        }
    } else {
        const bool grace = !m_ready && now < m_run_started + probe.start_period;
        const char* phase = m_ready ? "liveness" : "readiness";
        if (!grace) {
            m_probe_failures += 1;
        }
        if (!probe.failure_hint.empty()) {
            detail += " — " + probe.failure_hint;
        }
        m_status.reason =
            fmt::format("{} probe ({}) failed: {}", phase, to_string(probe.kind), detail);
        m_changed = true;
        if (m_probe_failures >= probe.retries) {
            m_end_detail = fmt::format("{} probe ({}) failed {} time{} in a row: {}", phase,
                                       to_string(probe.kind), m_probe_failures,
                                       m_probe_failures == 1 ? "" : "s", detail);
            begin_terminate(EndReason::ProbeFailed);
            return;
        }
    }
    schedule_probe(now + probe.interval);
}

void ServiceMachine::passive_ready(std::string detail) {
    if (m_phase != Phase::Up || m_ready || !m_run_config.probe || m_run_config.probe->is_active()) {
        return;
    }
    mark_ready(detail);
}

void ServiceMachine::on_tick() {
    const SteadyTime now = m_clock.now();
    switch (m_phase) {
        case Phase::Idle:
            return;
        case Phase::Backoff:
            if (m_spawn_at && now >= *m_spawn_at) {
                do_spawn();
            }
            return;
        case Phase::Terminating:
            if (m_kill_at && now >= *m_kill_at) {
                m_kill_at.reset();
                emit(MachineAction::Kind::Kill);
            }
            return;
        case Phase::Up:
            break;
    }
    if (!m_main_alive || !m_run_config.probe) {
        return;
    }
    const ProbeSpec& probe = *m_run_config.probe;
    if (m_probe_at && now >= *m_probe_at && !m_probe_in_flight) {
        m_probe_at.reset();
        m_probe_in_flight = true;
        emit(MachineAction::Kind::RunProbe);
    }
    if (m_passive_deadline && now >= *m_passive_deadline) {
        m_passive_deadline.reset();
        m_end_detail = fmt::format(
            "readiness probe ({}) failed: no {} within {}", to_string(probe.kind),
            probe.kind == ProbeKind::Log ? fmt::format("line matching `{}`", probe.log_pattern)
                                         : std::string("READY=1"),
            format_delay(probe.start_period + probe.interval * probe.retries));
        m_status.reason = m_end_detail;
        begin_terminate(EndReason::ProbeFailed);
    }
}

std::optional<SteadyTime> ServiceMachine::next_deadline() const {
    std::optional<SteadyTime> best;
    auto consider = [&](const std::optional<SteadyTime>& t) {
        if (t && (!best || *t < *best)) {
            best = t;
        }
    };
    switch (m_phase) {
        case Phase::Idle:
            break;
        case Phase::Backoff:
            consider(m_spawn_at);
            break;
        case Phase::Terminating:
            consider(m_kill_at);
            break;
        case Phase::Up:
            if (!m_probe_in_flight) {
                consider(m_probe_at);
            }
            consider(m_passive_deadline);
            break;
    }
    return best;
}

}  // namespace locald::host
