// Time for the Supervisor to notice that its service died.
//
// Starts `sleep 1000` under a Supervisor (restart = no) on a base::EventLoop,
// SIGKILLs it from this thread and measures from just before kill() to the
// first observer callback that reports the death (pid 0), and to the final
// `exited` state (tree confirmed empty, PTY drained). Pidfd-driven: no polling
// is involved in noticing the death itself.
// Usage: host_death_latency [RUNS]
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "base/child.h"
#include "base/event_loop.h"
#include "host/process_tree.h"
#include "host/supervisor.h"

using namespace locald;
using namespace locald::host;
using Steady = std::chrono::steady_clock;

int main(int argc, char** argv) {
    int runs = argc > 1 ? std::atoi(argv[1]) : 50;
    (void)become_subreaper();
    auto loop = base::EventLoop::create().release_value();
    std::vector<double> noticed_us;
    std::vector<double> exited_us;
    for (int i = 0; i < runs; ++i) {
        SupervisorOptions options;
        options.name = "bench:sleep";
        options.plan.argv = {"/bin/sleep", "1000"};
        options.restart.mode = RestartMode::No;
        auto supervisor = Supervisor::create(loop, options).release_value();
        Steady::time_point killed_at{};
        Steady::time_point noticed{};
        Steady::time_point exited{};
        supervisor->add_observer([&](const ServiceStatus& status) {
            if (killed_at != Steady::time_point{} && status.pid == 0 &&
                noticed == Steady::time_point{}) {
                noticed = Steady::now();
            }
            if (status.state == ServiceState::Exited) {
                exited = Steady::now();
            }
        });
        supervisor->start();
        pid_t pid = supervisor->status().pid;
        // Let the loop settle (first tree scan etc.) before the measurement.
        for (int k = 0; k < 3; ++k) {
            (void)loop.run_once(5);
        }
        killed_at = Steady::now();
        ::kill(pid, SIGKILL);
        while (exited == Steady::time_point{}) {
            (void)loop.run_once(1000);
        }
        noticed_us.push_back(
            std::chrono::duration<double, std::micro>(noticed - killed_at).count());
        exited_us.push_back(std::chrono::duration<double, std::micro>(exited - killed_at).count());
    }
    // Baseline: the same kill of a plain child watched by a bare pidfd watch —
    // what the kernel and the scheduler cost without any supervisor code.
    std::vector<double> baseline_us;
    for (int i = 0; i < runs; ++i) {
        auto child = base::Child::spawn([] {
            ::pause();
            return 0;
        });
        if (!child) {
            return 1;
        }
        Steady::time_point fired{};
        (void)loop.watch_pidfd(child->pidfd(), [&] { fired = Steady::now(); });
        for (int k = 0; k < 3; ++k) {
            (void)loop.run_once(5);
        }
        auto killed_at = Steady::now();
        ::kill(child->pid(), SIGKILL);
        while (fired == Steady::time_point{}) {
            (void)loop.run_once(1000);
        }
        baseline_us.push_back(std::chrono::duration<double, std::micro>(fired - killed_at).count());
        (void)child->wait();
    }
    auto report = [&](const char* what, std::vector<double> v) {
        std::sort(v.begin(), v.end());
        std::printf("%s: median %.0f us, p90 %.0f us, max %.0f us (%d runs)\n", what,
                    v[v.size() / 2], v[v.size() * 9 / 10], v.back(), runs);
    };
    report("baseline: bare pidfd watch fires", baseline_us);
    report("death noticed (pidfd -> observer)", noticed_us);
    report("state exited (tree empty, PTY drained)", exited_us);
    return 0;
}
