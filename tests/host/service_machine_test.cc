// The supervisor's decisions, driven exactly with a ManualClock: no sleeps,
// no processes.
#include "host/service_machine.h"

#include <gtest/gtest.h>

#include <signal.h>

namespace locald::host {
namespace {

using namespace std::chrono_literals;
using Kind = MachineAction::Kind;

std::vector<Kind> kinds(const std::vector<MachineAction>& actions) {
    std::vector<Kind> out;
    for (const auto& action : actions) {
        out.push_back(action.kind);
    }
    return out;
}

struct Fixture {
    explicit Fixture(MachineConfig config, double random = 0.0)
        : machine(std::move(config), clock, [random] { return random; }) {}

    ManualClock clock;
    ServiceMachine machine;

    // Runs the machine like the driver does for a spawn that succeeds.
    void spawn_ok(pid_t pid) {
        auto actions = machine.take_actions();
        ASSERT_FALSE(actions.empty());
        ASSERT_EQ(actions.front().kind, Kind::Spawn);
        machine.spawned(pid);
        machine.take_actions();
    }
    // The main process exits and nothing else is left.
    void crash(int code) {
        machine.main_exited(ExitInfo{code, 0});
        machine.tree_empty();
        machine.take_actions();
    }
    void advance_to_deadline() {
        auto deadline = machine.next_deadline();
        ASSERT_TRUE(deadline.has_value());
        ASSERT_GE(*deadline, clock.now());
        clock.advance(std::chrono::duration_cast<Millis>(*deadline - clock.now()));
        machine.on_tick();
    }
};

MachineConfig policy_config(RestartMode mode, int max_restarts = 10) {
    MachineConfig config;
    config.restart.mode = mode;
    config.restart.backoff_initial = 500ms;
    config.restart.backoff_max = 4s;
    config.restart.jitter = 0.0;
    config.restart.min_uptime = 5s;
    config.restart.max_restarts = max_restarts;
    config.stop_timeout = 10s;
    return config;
}

TEST(Backoff, DoublesFromInitialAndCapsAtMax) {
    RestartPolicy policy;
    policy.backoff_initial = 500ms;
    policy.backoff_max = 4s;
    policy.jitter = 0.0;
    EXPECT_EQ(backoff_delay(policy, 0, 0.5), 500ms);
    EXPECT_EQ(backoff_delay(policy, 1, 0.5), 1000ms);
    EXPECT_EQ(backoff_delay(policy, 2, 0.5), 2000ms);
    EXPECT_EQ(backoff_delay(policy, 3, 0.5), 4000ms);
    EXPECT_EQ(backoff_delay(policy, 4, 0.5), 4000ms);
    EXPECT_EQ(backoff_delay(policy, 1000, 0.5), 4000ms);
}

TEST(Backoff, JitterShortensButStaysWithinInitialAndMax) {
    RestartPolicy policy;
    policy.backoff_initial = 500ms;
    policy.backoff_max = 4s;
    policy.jitter = 0.5;
    EXPECT_EQ(backoff_delay(policy, 3, 0.0), 4000ms);
    EXPECT_EQ(backoff_delay(policy, 3, 0.5), 3000ms);    // 4000 * (1 - 0.25)
    EXPECT_EQ(backoff_delay(policy, 2, 0.999), 1001ms);  // 2000 * (1 - 0.4995)
    EXPECT_EQ(backoff_delay(policy, 0, 0.999), 500ms);   // never below initial
}

TEST(Backoff, RestartDecision) {
    EXPECT_FALSE(should_restart(RestartMode::No, true));
    EXPECT_FALSE(should_restart(RestartMode::OnFailure, false));
    EXPECT_TRUE(should_restart(RestartMode::OnFailure, true));
    EXPECT_TRUE(should_restart(RestartMode::Always, false));
}

TEST(ServiceMachine, StartsRunningWithoutProbe) {
    Fixture f(policy_config(RestartMode::OnFailure));
    EXPECT_EQ(f.machine.status().state, ServiceState::Pending);
    f.machine.start();
    f.spawn_ok(100);
    EXPECT_EQ(f.machine.status().state, ServiceState::Running);
    EXPECT_EQ(f.machine.status().pid, 100);
    EXPECT_TRUE(f.machine.status().started_at.has_value());
    EXPECT_FALSE(f.machine.next_deadline().has_value());
}

TEST(ServiceMachine, CrashLoopBacksOffExponentiallyThenFails) {
    Fixture f(policy_config(RestartMode::OnFailure, 3));
    f.machine.start();
    f.spawn_ok(100);
    const Millis expected[] = {500ms, 1000ms, 2000ms};
    for (int i = 0; i < 3; ++i) {
        f.clock.advance(100ms);  // well below min_uptime
        f.crash(1);
        const auto& status = f.machine.status();
        ASSERT_EQ(status.state, ServiceState::Starting) << i;
        EXPECT_EQ(status.pid, 0);
        EXPECT_EQ(status.restarts, i + 1);
        ASSERT_TRUE(status.next_start_at.has_value());
        EXPECT_EQ(*status.next_start_at - f.clock.now(), expected[i]) << i;
        EXPECT_NE(status.reason.find("exited with code 1"), std::string::npos) << status.reason;
        // Not one millisecond early.
        f.clock.advance(expected[i] - 1ms);
        f.machine.on_tick();
        EXPECT_TRUE(f.machine.take_actions().empty());
        f.clock.advance(1ms);
        f.machine.on_tick();
        f.spawn_ok(101 + i);
    }
    f.clock.advance(100ms);
    f.crash(1);
    EXPECT_EQ(f.machine.status().state, ServiceState::Failed);
    EXPECT_EQ(f.machine.status().restarts, 3);
    EXPECT_EQ(f.machine.status().reason, "gave up after 3 restarts in a row: exited with code 1");
    EXPECT_FALSE(f.machine.next_deadline().has_value());
}

TEST(ServiceMachine, MinUptimeResetsTheSeries) {
    Fixture f(policy_config(RestartMode::Always, 2));
    f.machine.start();
    f.spawn_ok(100);
    f.clock.advance(100ms);
    f.crash(1);
    f.advance_to_deadline();  // 500ms
    f.spawn_ok(101);
    f.clock.advance(100ms);
    f.crash(1);
    EXPECT_EQ(*f.machine.status().next_start_at - f.clock.now(), 1000ms);
    f.advance_to_deadline();
    f.spawn_ok(102);
    // This run lasts exactly min_uptime: the series starts over.
    f.clock.advance(5s);
    f.crash(0);
    EXPECT_EQ(f.machine.status().state, ServiceState::Starting);
    EXPECT_EQ(f.machine.status().consecutive_failures, 1);
    EXPECT_EQ(f.machine.status().restarts, 3);
    EXPECT_EQ(*f.machine.status().next_start_at - f.clock.now(), 500ms);
}

TEST(ServiceMachine, JustBelowMinUptimeDoesNotReset) {
    Fixture f(policy_config(RestartMode::Always, 10));
    f.machine.start();
    f.spawn_ok(100);
    f.clock.advance(100ms);
    f.crash(1);
    f.advance_to_deadline();
    f.spawn_ok(101);
    f.clock.advance(5s - 1ms);
    f.crash(1);
    EXPECT_EQ(*f.machine.status().next_start_at - f.clock.now(), 1000ms);
}

TEST(ServiceMachine, PolicyDecidesExitedOrRestart) {
    {
        Fixture f(policy_config(RestartMode::OnFailure));
        f.machine.start();
        f.spawn_ok(100);
        f.crash(0);
        EXPECT_EQ(f.machine.status().state, ServiceState::Exited);
        EXPECT_EQ(f.machine.status().last_exit->exit_code, 0);
    }
    {
        Fixture f(policy_config(RestartMode::No));
        f.machine.start();
        f.spawn_ok(100);
        f.crash(3);
        EXPECT_EQ(f.machine.status().state, ServiceState::Exited);
        EXPECT_EQ(f.machine.status().last_exit->exit_code, 3);
        EXPECT_EQ(f.machine.status().reason, "exited with code 3");
    }
    {
        Fixture f(policy_config(RestartMode::OnFailure));
        f.machine.start();
        f.spawn_ok(100);
        f.machine.main_exited(ExitInfo{128 + SIGSEGV, SIGSEGV});
        f.machine.tree_empty();
        EXPECT_EQ(f.machine.status().state, ServiceState::Starting);
        EXPECT_NE(f.machine.status().reason.find("killed by SIGSEGV"), std::string::npos);
    }
}

TEST(ServiceMachine, ManualRestartResetsCounters) {
    Fixture f(policy_config(RestartMode::Always, 10));
    f.machine.start();
    f.spawn_ok(100);
    for (int i = 0; i < 3; ++i) {
        f.crash(1);
        f.advance_to_deadline();
        f.spawn_ok(101 + i);
    }
    EXPECT_EQ(f.machine.status().restarts, 3);
    f.machine.restart();
    auto actions = f.machine.take_actions();
    ASSERT_EQ(actions.front().kind, Kind::Signal);
    EXPECT_EQ(actions.front().signal, SIGTERM);
    f.machine.main_exited(ExitInfo{128 + SIGTERM, SIGTERM});
    f.machine.tree_empty();
    f.spawn_ok(200);
    EXPECT_EQ(f.machine.status().restarts, 0);
    EXPECT_EQ(f.machine.status().consecutive_failures, 0);
    EXPECT_EQ(f.machine.status().state, ServiceState::Running);
}

TEST(ServiceMachine, ManualStartAfterFailedResetsCounters) {
    Fixture f(policy_config(RestartMode::Always, 0));
    f.machine.start();
    f.spawn_ok(100);
    f.crash(1);
    EXPECT_EQ(f.machine.status().state, ServiceState::Failed);
    f.machine.start();
    f.spawn_ok(101);
    EXPECT_EQ(f.machine.status().state, ServiceState::Running);
    EXPECT_TRUE(f.machine.status().reason.empty());
}

TEST(ServiceMachine, StopEscalatesToKillAfterTimeoutAndWaitsForEmptyTree) {
    Fixture f(policy_config(RestartMode::Always));
    f.machine.start();
    f.spawn_ok(100);
    f.machine.stop();
    auto actions = f.machine.take_actions();
    ASSERT_EQ(kinds(actions), (std::vector<Kind>{Kind::Signal, Kind::StateChanged}));
    EXPECT_EQ(f.machine.status().state, ServiceState::Stopping);
    f.clock.advance(10s - 1ms);
    f.machine.on_tick();
    EXPECT_TRUE(f.machine.take_actions().empty());
    f.clock.advance(1ms);
    f.machine.on_tick();
    EXPECT_EQ(kinds(f.machine.take_actions()), (std::vector<Kind>{Kind::Kill}));
    // Main gone, but something of the run is still alive: still stopping.
    f.machine.main_exited(ExitInfo{128 + SIGKILL, SIGKILL});
    EXPECT_EQ(f.machine.status().state, ServiceState::Stopping);
    f.machine.tree_empty();
    EXPECT_EQ(f.machine.status().state, ServiceState::Stopped);
    EXPECT_FALSE(f.machine.next_deadline().has_value());
}

TEST(ServiceMachine, StopUsesConfiguredSignal) {
    auto config = policy_config(RestartMode::Always);
    config.stop_signal = SIGINT;
    Fixture f(config);
    f.machine.start();
    f.spawn_ok(100);
    f.machine.stop();
    auto actions = f.machine.take_actions();
    EXPECT_EQ(actions.front().signal, SIGINT);
}

TEST(ServiceMachine, LeftoversOfACrashedRunAreEndedBeforeARestart) {
    Fixture f(policy_config(RestartMode::Always));
    f.machine.start();
    f.spawn_ok(100);
    f.machine.main_exited(ExitInfo{1, 0});
    auto actions = f.machine.take_actions();
    ASSERT_EQ(actions.front().kind, Kind::Signal);
    f.clock.advance(10s);
    f.machine.on_tick();
    EXPECT_EQ(kinds(f.machine.take_actions()), (std::vector<Kind>{Kind::Kill}));
    EXPECT_FALSE(f.machine.next_deadline().has_value());  // waits for the tree
    f.machine.tree_empty();
    EXPECT_EQ(f.machine.status().state, ServiceState::Starting);
    // min_uptime counts to the main exit, not to the end of cleanup.
    EXPECT_EQ(f.machine.status().consecutive_failures, 1);
}

TEST(ServiceMachine, StopDuringBackoffCancelsTheRestart) {
    Fixture f(policy_config(RestartMode::Always));
    f.machine.start();
    f.spawn_ok(100);
    f.crash(1);
    f.machine.stop();
    EXPECT_EQ(f.machine.status().state, ServiceState::Stopped);
    EXPECT_FALSE(f.machine.next_deadline().has_value());
    EXPECT_EQ(kinds(f.machine.take_actions()), (std::vector<Kind>{Kind::StateChanged}));
    f.clock.advance(1h);
    f.machine.on_tick();
    EXPECT_TRUE(f.machine.take_actions().empty());
}

TEST(ServiceMachine, SpawnFailureFailsAtOnceWithTheReason) {
    Fixture f(policy_config(RestartMode::Always));
    f.machine.start();
    auto actions = f.machine.take_actions();
    ASSERT_EQ(actions.front().kind, Kind::Spawn);
    f.machine.spawn_failed("command not found: `nope`");
    EXPECT_EQ(f.machine.status().state, ServiceState::Failed);
    EXPECT_EQ(f.machine.status().reason, "command not found: `nope`");
    EXPECT_FALSE(f.machine.next_deadline().has_value());
}

MachineConfig probe_config(ProbeKind kind) {
    auto config = policy_config(RestartMode::OnFailure, 5);
    ProbeSpec probe;
    probe.kind = kind;
    probe.port = 8080;
    probe.log_pattern = "listening";
    probe.interval = 1s;
    probe.timeout = 500ms;
    probe.retries = 3;
    probe.start_period = 2500ms;
    config.probe = probe;
    return config;
}

TEST(ServiceMachineProbe, FirstAttemptOneIntervalAfterStartThenReady) {
    Fixture f(probe_config(ProbeKind::Http));
    f.machine.start();
    f.spawn_ok(100);
    EXPECT_EQ(f.machine.status().state, ServiceState::Starting);
    EXPECT_EQ(*f.machine.next_deadline() - f.clock.now(), 1s);
    f.advance_to_deadline();
    EXPECT_EQ(kinds(f.machine.take_actions()), (std::vector<Kind>{Kind::RunProbe}));
    EXPECT_FALSE(f.machine.next_deadline().has_value());  // one attempt in flight
    f.machine.probe_result(true, "http 200");
    EXPECT_EQ(f.machine.status().state, ServiceState::Ready);
    EXPECT_TRUE(f.machine.status().ready_at.has_value());
    // Liveness continues at the interval.
    EXPECT_EQ(*f.machine.next_deadline() - f.clock.now(), 1s);
}

TEST(ServiceMachineProbe, FailuresInStartPeriodDoNotCount) {
    Fixture f(probe_config(ProbeKind::Tcp));
    f.machine.start();
    f.spawn_ok(100);
    // Attempts at 1s and 2s are inside the 2.5s start period.
    for (int i = 0; i < 2; ++i) {
        f.advance_to_deadline();
        f.machine.take_actions();
        f.machine.probe_result(false, "connection refused");
        EXPECT_EQ(f.machine.status().state, ServiceState::Starting);
    }
    // 3s, 4s count; the 5s one is the third failure in a row.
    f.advance_to_deadline();
    f.machine.take_actions();
    f.machine.probe_result(false, "connection refused");
    f.advance_to_deadline();
    f.machine.take_actions();
    f.machine.probe_result(false, "connection refused");
    EXPECT_EQ(f.machine.status().state, ServiceState::Starting);
    EXPECT_EQ(f.machine.status().reason, "readiness probe (tcp) failed: connection refused");
    f.advance_to_deadline();
    f.machine.take_actions();
    f.machine.probe_result(false, "connection refused");
    EXPECT_EQ(f.machine.status().state, ServiceState::Stopping);
    auto actions = f.machine.take_actions();
    ASSERT_EQ(actions.front().kind, Kind::Signal);
    f.machine.main_exited(ExitInfo{128 + SIGTERM, SIGTERM});
    f.machine.tree_empty();
    // Counts as a failure: on-failure restarts it.
    EXPECT_EQ(f.machine.status().state, ServiceState::Starting);
    EXPECT_NE(f.machine.status().reason.find("readiness probe (tcp) failed 3 times in a row"),
              std::string::npos)
        << f.machine.status().reason;
}

TEST(ServiceMachineProbe, AnImplicitPortProbeGivesTheStartOneMinute) {
    // The default readiness of a service with a port (250 ms polls, as the
    // daemon uses): the start fails after a minute of refused connects, not
    // after a grace minute plus a minute of counted misses.
    auto config = policy_config(RestartMode::No);
    config.probe = ProbeSpec::port_open(8080, 250ms);
    Fixture f(config);
    f.machine.start();
    const auto started = f.clock.now();
    f.spawn_ok(100);
    while (f.machine.status().state == ServiceState::Starting) {
        f.advance_to_deadline();
        auto actions = f.machine.take_actions();
        ASSERT_FALSE(actions.empty());
        ASSERT_EQ(actions.front().kind, Kind::RunProbe);
        f.machine.probe_result(false, "connection refused");
        ASSERT_LE(f.clock.now() - started, 60s) << "still starting after a minute";
    }
    EXPECT_EQ(f.machine.status().state, ServiceState::Stopping);
    EXPECT_EQ(f.clock.now() - started, 60s);
    // The reason says what to check.
    EXPECT_NE(f.machine.status().reason.find(
                  "connection refused — does the service listen on $PORT (8080)?"),
              std::string::npos)
        << f.machine.status().reason;
}

TEST(ServiceMachineProbe, SuccessInStartPeriodIsReadyAtOnce) {
    Fixture f(probe_config(ProbeKind::Exec));
    f.machine.start();
    f.spawn_ok(100);
    f.advance_to_deadline();
    f.machine.take_actions();
    f.machine.probe_result(true, "");
    EXPECT_EQ(f.machine.status().state, ServiceState::Ready);
}

TEST(ServiceMachineProbe, LivenessFailuresInARowRestart) {
    auto config = probe_config(ProbeKind::Http);
    config.probe->start_period = 0ms;
    Fixture f(config);
    f.machine.start();
    f.spawn_ok(100);
    f.advance_to_deadline();
    f.machine.take_actions();
    f.machine.probe_result(true, "");
    ASSERT_EQ(f.machine.status().state, ServiceState::Ready);
    // fail, fail, success resets, then three failures.
    const bool results[] = {false, false, true, false, false, false};
    for (bool ok : results) {
        f.advance_to_deadline();
        auto actions = f.machine.take_actions();
        ASSERT_FALSE(actions.empty());
        EXPECT_EQ(actions.front().kind, Kind::RunProbe);
        f.machine.probe_result(ok, ok ? "" : "http 500");
    }
    EXPECT_EQ(f.machine.status().state, ServiceState::Stopping);
    f.machine.main_exited(ExitInfo{0, 0});
    f.machine.tree_empty();
    EXPECT_EQ(f.machine.status().state, ServiceState::Starting);
    EXPECT_NE(
        f.machine.status().reason.find("liveness probe (http) failed 3 times in a row: http 500"),
        std::string::npos);
}

TEST(ServiceMachineProbe, ProbeFailureWithRestartNoIsFailed) {
    auto config = probe_config(ProbeKind::Tcp);
    config.restart.mode = RestartMode::No;
    config.probe->start_period = 0ms;
    config.probe->retries = 1;
    Fixture f(config);
    f.machine.start();
    f.spawn_ok(100);
    f.advance_to_deadline();
    f.machine.take_actions();
    f.machine.probe_result(false, "refused");
    f.machine.main_exited(ExitInfo{0, 0});
    f.machine.tree_empty();
    EXPECT_EQ(f.machine.status().state, ServiceState::Failed);
}

TEST(ServiceMachineProbe, PassiveProbeReadyOnEventOrFailsAtDeadline) {
    {
        Fixture f(probe_config(ProbeKind::Log));
        f.machine.start();
        f.spawn_ok(100);
        // Deadline = start_period + interval * retries = 2.5s + 3s.
        EXPECT_EQ(*f.machine.next_deadline() - f.clock.now(), 5500ms);
        f.clock.advance(1s);
        f.machine.passive_ready("line matched");
        EXPECT_EQ(f.machine.status().state, ServiceState::Ready);
        EXPECT_FALSE(f.machine.next_deadline().has_value());
    }
    {
        Fixture f(probe_config(ProbeKind::Notify));
        f.machine.start();
        f.spawn_ok(100);
        f.clock.advance(5499ms);
        f.machine.on_tick();
        EXPECT_EQ(f.machine.status().state, ServiceState::Starting);
        f.clock.advance(1ms);
        f.machine.on_tick();
        EXPECT_EQ(f.machine.status().state, ServiceState::Stopping);
        EXPECT_NE(f.machine.status().reason.find("no READY=1 within 5.5s"), std::string::npos)
            << f.machine.status().reason;
    }
}

TEST(ServiceMachineProbe, ResultAfterStopIsIgnored) {
    Fixture f(probe_config(ProbeKind::Http));
    f.machine.start();
    f.spawn_ok(100);
    f.advance_to_deadline();
    f.machine.take_actions();
    f.machine.stop();
    auto actions = f.machine.take_actions();
    EXPECT_EQ(kinds(actions),
              (std::vector<Kind>{Kind::CancelProbe, Kind::Signal, Kind::StateChanged}));
    f.machine.probe_result(true, "");
    EXPECT_EQ(f.machine.status().state, ServiceState::Stopping);
}

}  // namespace
}  // namespace locald::host
