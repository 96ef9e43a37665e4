// The Supervisor end to end: real PTYs, real processes, a real event loop.
// Waits are bounded safety nets, never timing assertions.
#include "host/supervisor.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <algorithm>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "base/event_loop.h"
#include "host/ports.h"
#include "host/process_tree.h"
#include "test_util.h"

namespace locald::host {
namespace {

using namespace std::chrono_literals;
using testing::helper_path;

class SupervisorTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto loop = base::EventLoop::create();
        ASSERT_TRUE(loop.has_value());
        m_loop = std::make_unique<base::EventLoop>(loop.release_value());
        m_dir = testing::make_temp_dir();
    }

    SupervisorOptions options(std::vector<std::string> argv) {
        SupervisorOptions o;
        o.name = "test:svc";
        o.plan.argv = std::move(argv);
        o.plan.env = {"PATH=/usr/bin:/bin", "HOME=/tmp"};
        o.plan.cwd = m_dir;
        o.plan.stop_timeout = 5s;
        o.restart.mode = RestartMode::No;
        o.restart.backoff_initial = 10ms;
        o.restart.backoff_max = 40ms;
        o.restart.min_uptime = 10s;
        return o;
    }

    std::unique_ptr<Supervisor> make(SupervisorOptions o) {
        auto s = Supervisor::create(*m_loop, std::move(o));
        EXPECT_TRUE(s.has_value()) << s.error().to_string();
        return s.has_value() ? s.release_value() : nullptr;
    }

    bool run_until(const std::function<bool()>& condition, std::chrono::seconds limit = 20s) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (!condition()) {
            if (std::chrono::steady_clock::now() > deadline) {
                return false;
            }
            auto ran = m_loop->run_once(20);
            if (!ran) {
                ADD_FAILURE() << ran.error().to_string();
                return false;
            }
        }
        return true;
    }

    bool wait_state(Supervisor& s, ServiceState state, std::chrono::seconds limit = 20s) {
        bool ok = run_until([&] { return s.status().state == state; }, limit);
        EXPECT_TRUE(ok) << "wanted " << to_string(state) << ", still "
                        << to_string(s.status().state) << " (" << s.status().reason << ")";
        return ok;
    }

    static std::string all_logs(Supervisor& s) {
        std::string out;
        for (const auto& r : s.logs().tail(0)) {
            out += std::string(to_string(r.stream)) + " " + r.text + "\n";
        }
        return out;
    }

    std::unique_ptr<base::EventLoop> m_loop;
    std::string m_dir;
};

TEST_F(SupervisorTest, LogsEverythingWrittenJustBeforeExit) {
    auto s = make(options({helper_path(), "write-exit", "3000"}));
    EXPECT_EQ(s->status().state, ServiceState::Pending);
    s->start();
    ASSERT_TRUE(wait_state(*s, ServiceState::Exited));
    EXPECT_EQ(s->status().last_exit->exit_code, 0);
    EXPECT_EQ(s->status().pid, 0);
    auto records = s->logs().tail(0);
    std::string logs = all_logs(*s);
    EXPECT_NE(logs.find("out line 2999\nout last-no-newline\n"), std::string::npos)
        << logs.substr(logs.size() > 300 ? logs.size() - 300 : 0);
    // The exit is reported after the last line, never before it.
    EXPECT_LT(logs.find("out last-no-newline"), logs.find("sys exited with code 0"));
}

TEST_F(SupervisorTest, CommandNotFoundFailsAtOnceWithTheReason) {
    auto s = make(options({"locald-no-such-command"}));
    s->start();
    EXPECT_EQ(s->status().state, ServiceState::Failed);
    EXPECT_EQ(s->status().reason, "command not found: `locald-no-such-command`");
    EXPECT_NE(all_logs(*s).find("failed to start: command not found"), std::string::npos);
}

TEST_F(SupervisorTest, CrashLoopBacksOffThenFails) {
    auto o = options({helper_path(), "exit", "3"});
    o.restart.mode = RestartMode::OnFailure;
    o.restart.max_restarts = 2;
    auto s = make(o);
    std::vector<ServiceState> seen;
    s->add_observer([&](const ServiceStatus& status) { seen.push_back(status.state); });
    s->start();
    ASSERT_TRUE(wait_state(*s, ServiceState::Failed));
    EXPECT_EQ(s->status().restarts, 2);
    EXPECT_EQ(s->status().reason, "gave up after 2 restarts in a row: exited with code 3");
    std::string logs = all_logs(*s);
    size_t runs = 0;
    for (size_t pos = 0; (pos = logs.find("out exiting 3", pos)) != std::string::npos; ++pos) {
        ++runs;
    }
    EXPECT_EQ(runs, 3u) << logs;
    EXPECT_NE(logs.find("sys exited with code 3\nsys restarting in 10ms (restart 1 in a row)"),
              std::string::npos)
        << logs;
    EXPECT_NE(logs.find("sys failed: gave up after 2 restarts in a row: exited with code 3"),
              std::string::npos);
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.back(), ServiceState::Failed);
}

TEST_F(SupervisorTest, StoppingAServiceThatNeverStartedLogsNothing) {
    // `up --foreground web` then Ctrl-C: the project's other services were
    // never started and must not print "[locald] stopped".
    auto s = make(options({helper_path(), "sleep", "10"}));
    s->stop();
    EXPECT_EQ(s->status().state, ServiceState::Stopped);
    EXPECT_EQ(all_logs(*s).find("stopped"), std::string::npos) << all_logs(*s);
}

TEST_F(SupervisorTest, AnExitThatLeftNothingIsNotShownAsStopping) {
    // `stopping` is for runs locald ends (or an exit's leftovers being ended):
    // a process that exits on its own goes from running to its next state.
    auto o = options({helper_path(), "exit", "3"});
    o.restart.mode = RestartMode::No;
    auto s = make(o);
    std::vector<ServiceState> seen;
    s->add_observer([&](const ServiceStatus& status) { seen.push_back(status.state); });
    s->start();
    ASSERT_TRUE(wait_state(*s, ServiceState::Exited));
    EXPECT_EQ(std::count(seen.begin(), seen.end(), ServiceState::Stopping), 0)
        << "states seen: " << seen.size();
    EXPECT_EQ(s->status().reason, "exited with code 3");
}

class SupervisorTracking : public SupervisorTest, public ::testing::WithParamInterface<TrackMode> {
protected:
    void SetUp() override {
        SupervisorTest::SetUp();
        if (GetParam() == TrackMode::Auto &&
            cgroup_support().version == CgroupSupport::Version::None) {
            GTEST_SKIP() << "no writable cgroup here: " << cgroup_support().why_not;
        }
    }
};

TEST_P(SupervisorTracking, StopLeavesNothingOfADoubleForkingService) {
    auto o = options({helper_path(), "double-fork", m_dir + "/pid"});
    o.track = GetParam();
    auto s = make(o);
    s->start();
    EXPECT_EQ(s->status().state, ServiceState::Running);
    pid_t grandchild = 0;
    ASSERT_TRUE(run_until([&] {
        std::ifstream in(m_dir + "/pid");
        return static_cast<bool>(in >> grandchild);
    }));
    // Let the supervisor see it while its parent chain still exists (scan mode).
    ASSERT_TRUE(run_until([&] {
        auto pids = s->processes();
        return std::find(pids.begin(), pids.end(), grandchild) != pids.end();
    }));
    EXPECT_EQ(s->uses_cgroup(), GetParam() == TrackMode::Auto);
    s->stop();
    ASSERT_TRUE(wait_state(*s, ServiceState::Stopped));
    EXPECT_TRUE(testing::process_gone(grandchild));
    EXPECT_TRUE(s->processes().empty());
}

TEST_P(SupervisorTracking, StopLeavesNothingOfASetsidService) {
    auto o = options({helper_path(), "setsid", m_dir + "/pid"});
    o.track = GetParam();
    auto s = make(o);
    s->start();
    pid_t escaped = 0;
    ASSERT_TRUE(run_until([&] {
        std::ifstream in(m_dir + "/pid");
        return static_cast<bool>(in >> escaped);
    }));
    ASSERT_TRUE(run_until([&] { return ::getsid(escaped) == escaped; }));
    s->stop();
    ASSERT_TRUE(wait_state(*s, ServiceState::Stopped));
    EXPECT_TRUE(testing::process_gone(escaped));
}

INSTANTIATE_TEST_SUITE_P(Modes, SupervisorTracking,
                         ::testing::Values(TrackMode::Auto, TrackMode::ScanOnly),
                         [](const auto& info) {
                             return info.param == TrackMode::Auto ? "Cgroup" : "ProcScan";
                         });

TEST_F(SupervisorTest, LeftoversOfAnExitedRunAreEnded) {
    if (cgroup_support().version == CgroupSupport::Version::None) {
        GTEST_SKIP() << "needs a cgroup (a setsid'd orphan can outrun /proc scans): "
                     << cgroup_support().why_not;
    }
    auto s = make(options({helper_path(), "setsid-exit", m_dir + "/pid"}));
    s->start();
    ASSERT_TRUE(wait_state(*s, ServiceState::Exited));
    pid_t escaped = testing::read_pid_file(m_dir + "/pid");
    ASSERT_GT(escaped, 0);
    EXPECT_TRUE(testing::process_gone(escaped));
}

TEST_F(SupervisorTest, IgnoredStopSignalEscalatesToSigkill) {
    auto o = options({helper_path(), "ignore-term"});
    o.plan.stop_timeout = 200ms;
    auto s = make(o);
    s->start();
    ASSERT_TRUE(run_until([&] { return all_logs(*s).find("ignoring") != std::string::npos; }));
    s->stop();
    EXPECT_EQ(s->status().state, ServiceState::Stopping);
    ASSERT_TRUE(wait_state(*s, ServiceState::Stopped));
    std::string logs = all_logs(*s);
    EXPECT_NE(logs.find("sys stopping: sending SIGTERM"), std::string::npos) << logs;
    EXPECT_NE(logs.find("sys still running 200ms after SIGTERM: sending SIGKILL"),
              std::string::npos)
        << logs;
}

TEST_F(SupervisorTest, StopSignalIsConfigurable) {
    auto o = options({"/bin/sh", "-c",
                      "trap 'echo got-int; exit 0' INT; echo armed; "
                      "while :; do sleep 0.05; done"});
    o.plan.stop_signal = SIGINT;
    auto s = make(o);
    s->start();
    ASSERT_TRUE(run_until([&] { return all_logs(*s).find("armed") != std::string::npos; }));
    s->stop();
    ASSERT_TRUE(wait_state(*s, ServiceState::Stopped));
    EXPECT_NE(all_logs(*s).find("out got-int"), std::string::npos) << all_logs(*s);
}

TEST_F(SupervisorTest, TcpProbeWaitsForThePort) {
    auto port = allocate_free_port();
    ASSERT_TRUE(port.has_value());
    auto o = options({helper_path(), "listen-after", "300", std::to_string(*port)});
    o.probe = ProbeSpec::port_open(*port, 20ms);
    auto s = make(o);
    s->start();
    EXPECT_EQ(s->status().state, ServiceState::Starting);
    ASSERT_TRUE(wait_state(*s, ServiceState::Ready));
    EXPECT_TRUE(s->status().ready_at.has_value());
    EXPECT_GE(*s->status().ready_at, *s->status().started_at);
    EXPECT_NE(all_logs(*s).find("out listening"), std::string::npos);
}

TEST_F(SupervisorTest, HttpProbeReady) {
    auto port = allocate_free_port();
    ASSERT_TRUE(port.has_value());
    auto o = options({helper_path(), "http", std::to_string(*port)});
    ProbeSpec probe;
    probe.kind = ProbeKind::Http;
    probe.port = *port;
    probe.http_path = "/healthz";
    probe.interval = 30ms;
    probe.start_period = 10s;
    o.probe = probe;
    auto s = make(o);
    s->start();
    ASSERT_TRUE(wait_state(*s, ServiceState::Ready));
}

TEST_F(SupervisorTest, ProbeThatNeverPassesFailsWithTheReason) {
    auto port = allocate_free_port();
    ASSERT_TRUE(port.has_value());
    auto o = options({"/bin/sleep", "100"});
    ProbeSpec probe;
    probe.kind = ProbeKind::Http;
    probe.port = *port;  // nobody listens
    probe.interval = 20ms;
    probe.retries = 2;
    o.probe = probe;
    auto s = make(o);
    s->start();
    ASSERT_TRUE(wait_state(*s, ServiceState::Failed));
    EXPECT_EQ(s->status().reason,
              fmt::format("readiness probe (http) failed 2 times in a row: connect "
                          "127.0.0.1:{}: Connection refused",
                          *port));
    EXPECT_TRUE(s->processes().empty());
}

TEST_F(SupervisorTest, ExecProbeUsesTheServiceEnvAndReportsOutput) {
    auto o = options({"/bin/sleep", "100"});
    o.plan.env.push_back("CHECK_FILE=" + m_dir + "/healthy");
    ProbeSpec probe;
    probe.kind = ProbeKind::Exec;
    probe.exec_argv = {"/bin/sh", "-c", "test -f \"$CHECK_FILE\" || { echo no-file; exit 2; }"};
    probe.interval = 20ms;
    probe.retries = 1;
    probe.start_period = 30s;
    o.probe = probe;
    auto s = make(o);
    s->start();
    ASSERT_TRUE(run_until([&] { return !s->status().reason.empty(); }));
    EXPECT_EQ(s->status().state, ServiceState::Starting);  // inside start_period
    EXPECT_EQ(s->status().reason, "readiness probe (exec) failed: exited with status 2: no-file");
    std::ofstream(m_dir + "/healthy") << "ok";
    ASSERT_TRUE(wait_state(*s, ServiceState::Ready));
}

TEST_F(SupervisorTest, LivenessFailureRestartsUnderThePolicy) {
    auto o = options({"/bin/sleep", "100"});
    o.restart.mode = RestartMode::OnFailure;
    std::string flag = m_dir + "/alive";
    std::ofstream(flag) << "ok";
    ProbeSpec probe;
    probe.kind = ProbeKind::Exec;
    probe.exec_argv = {"/bin/test", "-f", flag};
    probe.interval = 20ms;
    probe.retries = 3;
    o.probe = probe;
    auto s = make(o);
    s->start();
    ASSERT_TRUE(wait_state(*s, ServiceState::Ready));
    pid_t first = s->status().pid;
    ::unlink(flag.c_str());
    ASSERT_TRUE(run_until([&] { return s->status().restarts == 1; }));
    EXPECT_NE(all_logs(*s).find("liveness probe (exec) failed 3 times in a row"),
              std::string::npos);
    std::ofstream(flag) << "ok";
    ASSERT_TRUE(wait_state(*s, ServiceState::Ready));
    EXPECT_NE(s->status().pid, first);
}

TEST_F(SupervisorTest, LogProbeMatchesARegexLine) {
    auto o = options({"/bin/sh", "-c",
                      "echo booting; sleep 0.1; printf '\\033[32mserver listening on "
                      "8080\\033[0m\\n'; sleep 100"});
    ProbeSpec probe;
    probe.kind = ProbeKind::Log;
    probe.log_pattern = "/listening on \\d+$/";
    probe.start_period = 30s;
    o.probe = probe;
    auto s = make(o);
    s->start();
    ASSERT_TRUE(wait_state(*s, ServiceState::Ready));
    EXPECT_NE(all_logs(*s).find("out booting"), std::string::npos);
}

TEST_F(SupervisorTest, NotifyReadyFromTheServiceCounts) {
    auto o = options({helper_path(), "notify"});
    ProbeSpec probe;
    probe.kind = ProbeKind::Notify;
    probe.start_period = 30s;
    o.probe = probe;
    auto s = make(o);
    ASSERT_FALSE(s->notify_socket().empty());
    s->start();
    ASSERT_TRUE(wait_state(*s, ServiceState::Ready));
    EXPECT_NE(all_logs(*s).find("sys notify: warming up"), std::string::npos) << all_logs(*s);
}

TEST_F(SupervisorTest, NotifyFromASenderThatAlreadyExitedCounts) {
    // Like `systemd-notify --ready` in a start script: the sender is gone
    // before the daemon reads its datagram. The loop is not run until then.
    std::string marker = m_dir + "/sent";
    auto o = options({"/bin/sh", "-c", "\"$0\" notify-exit && : > \"$1\" && exec sleep 100",
                      helper_path(), marker});
    ProbeSpec probe;
    probe.kind = ProbeKind::Notify;
    probe.start_period = 30s;
    o.probe = probe;
    auto s = make(o);
    s->start();
    for (int i = 0; i < 3000 && ::access(marker.c_str(), F_OK) != 0; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    ASSERT_EQ(::access(marker.c_str(), F_OK), 0) << all_logs(*s);
    ASSERT_TRUE(wait_state(*s, ServiceState::Ready)) << all_logs(*s);
}

TEST_F(SupervisorTest, NotifyFromASenderThatIsAnUnreapedZombieCounts) {
    // `systemd-notify --ready &`, or a shell that has not yet waited for it:
    // the sender has exited but is not reaped, so it is neither in the tree
    // (cgroup.procs lists no zombies) nor gone (kill(pid, 0) still works).
    auto o = options({"/bin/sh", "-c", "\"$0\" notify-exit & exec sleep 100", helper_path()});
    ProbeSpec probe;
    probe.kind = ProbeKind::Notify;
    probe.start_period = 30s;
    o.probe = probe;
    auto s = make(o);
    s->start();
    // The loop is not run until the sender is a zombie (sleep never reaps it).
    const pid_t main_pid = s->status().pid;
    ASSERT_GT(main_pid, 0) << all_logs(*s);
    const std::string children =
        "/proc/" + std::to_string(main_pid) + "/task/" + std::to_string(main_pid) + "/children";
    if (::access(children.c_str(), R_OK) != 0) {
        GTEST_SKIP() << children << ": " << std::strerror(errno) << " (CONFIG_PROC_CHILDREN)";
    }
    bool zombie = false;
    for (int i = 0; i < 3000 && !zombie; ++i) {
        std::ifstream in(children);
        pid_t child = 0;
        while (in >> child) {
            auto stat = read_proc_stat(child);
            zombie = zombie || (stat && stat->state == 'Z');
        }
        if (!zombie) {
            std::this_thread::sleep_for(10ms);
        }
    }
    ASSERT_TRUE(zombie) << all_logs(*s);
    ASSERT_TRUE(wait_state(*s, ServiceState::Ready)) << all_logs(*s);
}

TEST_F(SupervisorTest, NotifyStatusReachesTheLogFileWithoutFurtherOutput) {
    // STATUS= is logged as a system line; with no output after it and no state
    // change it must still reach the file (it sat in the buffer until then).
    auto o = options({"/bin/sh", "-c", "\"$0\" notify-exit; exec sleep 100", helper_path()});
    o.logs.file_path = m_dir + "/logs/status.log";
    auto s = make(o);
    s->start();
    auto file_has_status = [&] {
        std::ifstream in(o.logs.file_path);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        return text.find("notify: warming up") != std::string::npos;
    };
    ASSERT_TRUE(run_until([&] {
        return all_logs(*s).find("sys notify: warming up") != std::string::npos;
    })) << all_logs(*s);
    EXPECT_TRUE(run_until(file_has_status, 10s)) << all_logs(*s);
}

TEST_F(SupervisorTest, NotifyFromAStrangerIsIgnored) {
    auto o = options({"/bin/sleep", "100"});
    ProbeSpec probe;
    probe.kind = ProbeKind::Notify;
    probe.start_period = 30s;
    o.probe = probe;
    auto s = make(o);
    s->start();
    // We (the test process) are not part of the service.
    std::string name = s->notify_socket();
    base::UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.data(), name.size());
    addr.sun_path[0] = name[0] == '@' ? '\0' : name[0];
    ASSERT_GT(::sendto(fd.get(), "READY=1", 7, 0, reinterpret_cast<sockaddr*>(&addr),
                       static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size())),
              0);
    ASSERT_TRUE(run_until([&] { return all_logs(*s).find("ignored") != std::string::npos; }));
    EXPECT_EQ(s->status().state, ServiceState::Starting);
}

TEST_F(SupervisorTest, AttachInputResizeAndRawOutput) {
    auto s = make(options({helper_path(), "echo"}));
    EXPECT_FALSE(s->write_input("x").has_value());  // nothing running yet
    s->start();
    std::string raw;
    auto sub = s->logs().subscribe_raw(1 << 20, nullptr);
    ASSERT_TRUE(s->resize({40, 120}).has_value());
    auto written = s->write_input("hello attach\n");
    ASSERT_TRUE(written.has_value());
    EXPECT_EQ(*written, 13u);
    ASSERT_TRUE(run_until([&] {
        sub->drain_raw(raw);
        return raw.find("got: hello attach") != std::string::npos;
    }));
    s->stop();
    ASSERT_TRUE(wait_state(*s, ServiceState::Stopped));
}

TEST_F(SupervisorTest, ManualRestartGivesANewProcess) {
    auto s = make(options({"/bin/sleep", "100"}));
    s->start();
    pid_t first = s->status().pid;
    ASSERT_GT(first, 0);
    s->restart();
    ASSERT_TRUE(run_until(
        [&] { return s->status().state == ServiceState::Running && s->status().pid != first; }));
    EXPECT_TRUE(testing::process_gone(first));
    EXPECT_EQ(s->status().restarts, 0);
}

TEST_F(SupervisorTest, ReconfigureAppliesAtTheNextRun) {
    auto s = make(options({"/bin/sh", "-c", "echo first-plan; exec sleep 100"}));
    s->start();
    ASSERT_TRUE(run_until([&] { return all_logs(*s).find("first-plan") != std::string::npos; }));
    auto o = options({"/bin/sh", "-c", "echo second-plan; exec sleep 100"});
    ASSERT_TRUE(s->reconfigure(o).has_value());
    EXPECT_EQ(all_logs(*s).find("second-plan"), std::string::npos);  // running run untouched
    s->restart();
    ASSERT_TRUE(run_until([&] { return all_logs(*s).find("second-plan") != std::string::npos; }));
    EXPECT_FALSE(s->reconfigure(options({})).has_value());  // still validated
}

TEST_F(SupervisorTest, FloodDoesNotBlockTheProducerAndKeepsTheTail) {
    auto o = options({helper_path(), "flood", std::to_string(64 << 20)});
    o.logs.file_path = m_dir + "/logs/svc.log";
    o.logs.file_max_bytes = 8 << 20;
    o.logs.file_keep = 2;
    auto s = make(o);
    int wakes = 0;
    // A subscriber that never reads: it must cost drops, not stalls.
    auto stuck = s->logs().subscribe(100, [&] { ++wakes; });
    s->start();
    ASSERT_TRUE(wait_state(*s, ServiceState::Exited, 120s));
    EXPECT_EQ(s->status().last_exit->exit_code, 0);
    EXPECT_GE(s->logs().bytes_written(), uint64_t(64) << 20);
    auto tail = s->logs().tail(3);
    ASSERT_EQ(tail.size(), 3u);
    EXPECT_TRUE(tail[0].text.starts_with("flood-done ")) << tail[0].text.substr(0, 50);
    EXPECT_EQ(tail[1].text, "exited with code 0");
    EXPECT_EQ(tail[2].text, "not restarting (restart policy)");
    EXPECT_EQ(s->logs().tail(0).size(), 10'000u);
    std::vector<LogRecord> got;
    stuck->drain(got);
    ASSERT_EQ(got.size(), 101u);
    EXPECT_EQ(got.back().stream, LogStream::Gap);
    EXPECT_GT(got.back().dropped, 600'000u);
    EXPECT_EQ(wakes, 1);
    struct stat st {};
    EXPECT_EQ(::stat((o.logs.file_path + ".2").c_str(), &st), 0);
    EXPECT_NE(::stat((o.logs.file_path + ".3").c_str(), &st), 0);
}

TEST_F(SupervisorTest, DestructionKillsTheRun) {
    auto s = make(options({helper_path(), "double-fork", m_dir + "/pid"}));
    s->start();
    pid_t main = s->status().pid;
    pid_t grandchild = 0;
    ASSERT_TRUE(run_until([&] {
        std::ifstream in(m_dir + "/pid");
        return static_cast<bool>(in >> grandchild);
    }));
    ASSERT_TRUE(run_until([&] {
        auto pids = s->processes();
        return std::find(pids.begin(), pids.end(), grandchild) != pids.end();
    }));
    s.reset();
    EXPECT_TRUE(testing::process_gone(main));
    EXPECT_TRUE(testing::wait_until([&] { return testing::process_gone(grandchild); }));
}

// As an unprivileged user (scripts/test runs these as `locald-test` from a copy
// of the binary, so no helper program: /bin/sh plays the double-forker).
TEST_F(SupervisorTest, RootlessDoubleForkedServiceIsStoppedCompletely) {
    if (::geteuid() == 0) {
        GTEST_SKIP() << "runs as the unprivileged test user (scripts/test second pass)";
    }
    std::printf("cgroup tracking for this user: %s\n",
                cgroup_support().version == CgroupSupport::Version::None
                    ? ("none (" + cgroup_support().why_not + ")").c_str()
                    : cgroup_support().parent.c_str());
    auto o = options({"/bin/sh", "-c",
                      "sh -c 'sleep 1000 & echo $! > \"$0\"' \"$PIDFILE\"; echo started; "
                      "exec sleep 1000"});
    o.plan.env.push_back("PIDFILE=" + m_dir + "/pid");
    auto s = make(o);
    s->start();
    ASSERT_EQ(s->status().state, ServiceState::Running) << s->status().reason;
    pid_t orphan = 0;
    ASSERT_TRUE(run_until([&] {
        std::ifstream in(m_dir + "/pid");
        return static_cast<bool>(in >> orphan);
    }));
    ASSERT_TRUE(run_until([&] {
        auto pids = s->processes();
        return std::find(pids.begin(), pids.end(), orphan) != pids.end();
    }));
    s->stop();
    ASSERT_TRUE(wait_state(*s, ServiceState::Stopped));
    EXPECT_TRUE(testing::process_gone(orphan));
}

}  // namespace
}  // namespace locald::host
