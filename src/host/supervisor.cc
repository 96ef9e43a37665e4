#include "host/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "host/pty.h"

namespace locald::host {
namespace {

// Reads per wakeup before yielding to other services on the same loop.
constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kReadBudget = 4 * 1024 * 1024;
constexpr Millis kFileFlushDelay{20};  // longest a log line waits for the file

// How often the process tree is re-scanned: while running, to remember
// descendants (and reap adopted zombies); while stopping, to notice "empty".
constexpr Millis kTreePollRunning{2000};
constexpr Millis kTreePollStopping{20};

std::atomic<uint64_t> g_notify_counter{0};

std::string signal_name(int sig) {
    const char* abbrev = sigabbrev_np(sig);
    return abbrev ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", sig);
}

MachineConfig machine_config(const SupervisorOptions& options) {
    MachineConfig config;
    config.restart = options.restart;
    config.probe = options.probe;
    config.stop_signal = options.plan.stop_signal;
    config.stop_timeout = options.plan.stop_timeout;
    return config;
}

base::Result<void> validate(const SupervisorOptions& options) {
    if (options.plan.argv.empty() || options.plan.argv[0].empty()) {
        return base::invalid_argument("service `{}` has an empty command", options.name);
    }
    if (options.plan.stop_signal <= 0 || options.plan.stop_signal >= NSIG) {
        return base::invalid_argument("service `{}`: invalid stop signal {}", options.name,
                                      options.plan.stop_signal);
    }
    if (options.plan.stop_timeout.count() < 0) {
        return base::invalid_argument("service `{}`: negative stop timeout", options.name);
    }
    if (options.probe) {
        TRY(options.probe->validate().context(fmt::format("service `{}`", options.name)));
        if (options.probe->kind == ProbeKind::Notify && !options.notify_socket) {
            return base::invalid_argument(
                "service `{}`: a notify probe needs the notify socket enabled", options.name);
        }
    }
    return base::ok();
}

}  // namespace

Supervisor::Supervisor(base::EventLoop& loop, SupervisorOptions options, const Clock& clock,
                       RandomSource random)
    : m_loop(loop),
      m_options(std::move(options)),
      m_clock(clock),
      m_machine(machine_config(m_options), clock, std::move(random)),
      m_size(m_options.plan.pty_size) {}

base::Result<std::unique_ptr<Supervisor>> Supervisor::create(base::EventLoop& loop,
                                                             SupervisorOptions options,
                                                             const Clock& clock,
                                                             RandomSource random) {
    TRY(validate(options));
    std::unique_ptr<Supervisor> supervisor(
        new Supervisor(loop, std::move(options), clock, std::move(random)));
    supervisor->m_logs = TRY(LogSink::create(supervisor->m_options.logs, clock)
                                 .context(fmt::format("service `{}`", supervisor->name())));
    if (supervisor->m_options.notify_socket) {
        TRY(supervisor->open_notify_socket());
    }
    supervisor->m_logs->set_line_hook([raw = supervisor.get()](const LogRecord& record) {
        if (raw->m_log_matcher && record.stream == LogStream::Output &&
            raw->m_log_matcher->matches(record.text)) {
            raw->m_log_matched = true;
        }
    });
    return supervisor;
}

Supervisor::~Supervisor() {
    *m_alive = false;
    kill_everything_now();
    for (auto id : {m_pty_watch, m_pid_watch, m_deadline_timer, m_tree_timer, m_notify_watch,
                    m_flush_timer}) {
        if (id) {
            m_loop.remove(id);
        }
    }
    if (!m_options.notify_socket_path.empty()) {
        ::unlink(m_options.notify_socket_path.c_str());
    }
}

base::Result<void> Supervisor::open_notify_socket() {
    base::UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        return base::errno_error("creating the notify socket");
    }
    int one = 1;
    // SO_PASSCRED: every datagram carries the sender's pid (SCM_CREDENTIALS),
    // checked against the service's processes.
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) {
        return base::errno_error("enabling SO_PASSCRED on the notify socket");
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socklen_t len;
    if (m_options.notify_socket_path.empty()) {
        // Abstract namespace: nothing on disk to clean up after a crash.
        m_notify_name = fmt::format("@locald/{}/{}", ::getpid(), ++g_notify_counter);
        std::memcpy(addr.sun_path, m_notify_name.data(), m_notify_name.size());
        addr.sun_path[0] = '\0';
        len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + m_notify_name.size());
    } else {
        const std::string& path = m_options.notify_socket_path;
        if (path.size() >= sizeof addr.sun_path) {
            return base::invalid_argument("notify socket path `{}` is too long", path);
        }
        ::unlink(path.c_str());  // a stale socket of a previous daemon
        std::memcpy(addr.sun_path, path.data(), path.size());
        len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
        m_notify_name = path;
    }
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
        return base::errno_error("binding the notify socket `{}`", m_notify_name);
    }
    auto watch = m_loop.add_fd(fd.get(), EPOLLIN, [this](uint32_t) { on_notify_readable(); });
    if (!watch) {
        return watch.release_error();
    }
    m_notify_watch = *watch;
    m_notify_fd = std::move(fd);
    return base::ok();
}

void Supervisor::start() {
    m_machine.start();
    perform_actions();
}

void Supervisor::stop() {
    m_machine.stop();
    perform_actions();
}

void Supervisor::restart() {
    m_machine.restart();
    perform_actions();
}

base::Result<void> Supervisor::reconfigure(SupervisorOptions options) {
    TRY(validate(options));
    // The log sink and notify socket stay: history and the socket path live
    // across re-applies.
    options.logs = m_options.logs;
    options.notify_socket = m_options.notify_socket;
    options.notify_socket_path = m_options.notify_socket_path;
    m_options = std::move(options);
    m_machine.set_config(machine_config(m_options));
    return base::ok();
}

const ServiceStatus& Supervisor::status() const {
    return m_machine.status();
}

uint64_t Supervisor::add_observer(Observer observer) {
    uint64_t id = m_next_observer++;
    m_observers.emplace_back(id, std::move(observer));
    return id;
}

void Supervisor::remove_observer(uint64_t id) {
    std::erase_if(m_observers, [id](const auto& entry) { return entry.first == id; });
}

void Supervisor::perform_actions() {
    if (m_in_actions || !*m_alive) {
        return;  // the outer call picks up whatever the nested request queued
    }
    m_in_actions = true;
    auto alive = m_alive;
    for (;;) {
        auto actions = m_machine.take_actions();
        if (actions.empty()) {
            break;
        }
        bool changed = false;
        for (const auto& action : actions) {
            switch (action.kind) {
                case MachineAction::Kind::Spawn:
                    do_spawn();
                    break;
                case MachineAction::Kind::Signal:
                    if (m_tree) {
                        if (!m_main_exited) {
                            m_logs->write_system(
                                fmt::format("stopping: sending {}", signal_name(action.signal)));
                        }
                        m_tree->signal_all(action.signal);
                    }
                    m_terminating = true;
                    arm_tree_poll(kTreePollStopping);
                    if (m_main_exited) {
                        // It exited on its own: when it left nothing behind the
                        // run is over now, and observers see it end, not a
                        // `stopping` nobody asked for.
                        poll_tree();
                    }
                    break;
                case MachineAction::Kind::Kill:
                    m_logs->write_system(fmt::format("still running {}ms after {}: sending SIGKILL",
                                                     m_options.plan.stop_timeout.count(),
                                                     signal_name(m_options.plan.stop_signal)));
                    m_killing = true;
                    if (m_tree) {
                        m_tree->signal_all(SIGKILL);
                    }
                    break;
                case MachineAction::Kind::RunProbe:
                    run_probe();
                    break;
                case MachineAction::Kind::CancelProbe:
                    if (m_probe) {
                        m_probe->cancel();
                    }
                    break;
                case MachineAction::Kind::StateChanged:
                    changed = true;
                    break;
            }
        }
        if (changed) {
            m_in_actions = false;
            notify_observers();
            if (!*alive) {
                return;  // an observer destroyed us
            }
            m_in_actions = true;
        }
    }
    m_in_actions = false;
    arm_deadline_timer();
    if (m_terminating) {
        // A run whose processes are all gone already ends now, not one poll later.
        poll_tree();
    }
}

void Supervisor::do_spawn() {
    // A previous run is fully over here (the machine only spawns after
    // tree_empty), so its fds and cgroup can go.
    close_pty();
    m_probe.reset();
    m_tree.reset();
    m_terminating = false;
    m_killing = false;
    m_main_exited = false;
    m_log_matched = false;
    m_log_matcher.reset();

    auto tree = ProcessTree::create(m_options.name, m_options.track);
    if (!tree) {
        std::string reason = tree.error().to_string();
        m_logs->write_system("failed to start: " + reason);
        m_machine.spawn_failed(reason);
        return;
    }
    m_tree = tree.release_value();

    ExecPlan plan = m_options.plan;
    plan.pty_size = m_size;
    if (!m_notify_name.empty()) {
        std::erase_if(plan.env,
                      [](const std::string& e) { return e.starts_with("NOTIFY_SOCKET="); });
        plan.env.push_back("NOTIFY_SOCKET=" + m_notify_name);
    }
    SpawnOptions spawn_options;
    spawn_options.cgroup_procs_path = m_tree->cgroup_procs_path();
    base::UniqueFd cgroup_dir;
    if (m_tree->uses_cgroup_v2()) {
        cgroup_dir.reset(::open(m_tree->cgroup_dir().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        spawn_options.cgroup_dir_fd = cgroup_dir ? cgroup_dir.get() : -1;
    }
    spawn_options.parent_death_signal = m_options.parent_death_signal;
    auto child = spawn_in_pty(plan, spawn_options);
    if (!child) {
        std::string reason = child.error().to_string();
        m_logs->write_system("failed to start: " + reason);
        m_tree.reset();
        m_machine.spawn_failed(reason);
        return;
    }
    m_pid = child->pid;
    m_pidfd = std::move(child->pidfd);
    m_master = std::move(child->master);
    m_tree->set_leader(m_pid);

    auto pty_watch = m_loop.add_fd(m_master.get(), EPOLLIN,
                                   [this](uint32_t events) { on_pty_readable(events); });
    auto pid_watch = m_loop.watch_pidfd(m_pidfd.get(), [this] {
        m_pid_watch = 0;
        on_main_exit();
    });
    if (!pty_watch || !pid_watch) {
        // Without these we could neither log nor notice the exit: end the run.
        std::string reason = (!pty_watch ? pty_watch.error() : pid_watch.error()).to_string();
        if (pty_watch) {
            m_loop.remove(*pty_watch);
        }
        kill_everything_now();
        m_logs->write_system("failed to start: " + reason);
        m_machine.spawn_failed(reason);
        return;
    }
    m_pty_watch = *pty_watch;
    m_pid_watch = *pid_watch;

    const auto& probe = m_machine.config().probe;
    if (probe && probe->is_active()) {
        auto created = ActiveProbe::create(m_loop, *probe, plan.env, plan.cwd);
        if (created) {
            m_probe = created.release_value();
        } else {
            m_logs->write_system("probe: " + created.error().to_string());
        }
    } else if (probe && probe->kind == ProbeKind::Log) {
        auto matcher = LogMatcher::create(probe->log_pattern);
        if (matcher) {
            m_log_matcher = matcher.release_value();
        }
    }
    m_logs->write_system(fmt::format("started: pid {}{}", m_pid,
                                     m_tree->uses_cgroup() ? "" : " (no cgroup: /proc tracking)"));
    m_machine.spawned(m_pid);
    arm_tree_poll(kTreePollRunning);
}

void Supervisor::on_pty_readable(uint32_t) {
    drain_pty(false);
}

void Supervisor::drain_pty(bool until_eof) {
    if (!m_master) {
        return;
    }
    if (m_read_buffer.size() < kReadChunk) {
        m_read_buffer.resize(kReadChunk);
    }
    size_t budget = until_eof ? SIZE_MAX : kReadBudget;
    size_t total = 0;
    bool eof = false;
    while (total < budget) {
        ssize_t n = ::read(m_master.get(), m_read_buffer.data(), m_read_buffer.size());
        if (n > 0) {
            m_logs->write_output(std::string_view(m_read_buffer.data(), static_cast<size_t>(n)));
            total += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            break;
        }
        eof = true;  // EIO: every holder of the slave is gone, all data read
        break;
    }
    if (eof || until_eof) {
        m_logs->flush();
    } else {
        // A PTY hands out ≤ 4 KiB per read and a reader that keeps up sees
        // EAGAIN after every few reads: flushing per burst meant one small
        // file write per ~4 KiB (it halved a flood's throughput). The sink
        // writes itself at 256 KiB; the rest reaches the file within
        // kFileFlushDelay, and at once on state changes and at the run's end.
        // (The ring, which `logs` reads, has every line immediately.)
        schedule_flush();
    }
    if (m_log_matched) {
        m_log_matched = false;
        m_log_matcher.reset();  // readiness is decided; liveness has no log phase
        m_machine.passive_ready("log line matched");
        perform_actions();
    }
    if (eof) {
        close_pty();
    }
}

void Supervisor::schedule_flush() {
    if (m_logs->buffered_bytes() > 0 && m_flush_timer == 0) {
        m_flush_timer = m_loop.add_timer(kFileFlushDelay, [this] {
            m_flush_timer = 0;
            m_logs->flush();
        });
    }
}

void Supervisor::close_pty() {
    if (m_pty_watch) {
        m_loop.remove(m_pty_watch);
        m_pty_watch = 0;
    }
    if (m_master) {
        m_master.reset();
        m_logs->flush_partial();
    }
}

void Supervisor::on_main_exit() {
    auto reaped = try_reap(m_pid, m_pidfd.get());
    ExitInfo info;
    if (reaped && reaped.value()) {
        info.exit_code = reaped.value()->exit_code;
        info.signal = reaped.value()->signal;
    } else {
        // Someone else reaped it (a stray waitpid(-1)): the status is lost.
        info.exit_code = 255;
    }
    m_main_exited = true;
    m_pidfd.reset();
    if (m_tree) {
        m_tree->leader_reaped();
    }
    // Whatever it wrote before exiting is in the PTY now: log it before the
    // exit line.
    drain_pty(false);
    if (!m_terminating) {
        m_logs->write_system(info.describe());
    }
    m_pid = 0;
    m_machine.main_exited(info);
    perform_actions();
}

void Supervisor::arm_tree_poll(Millis every) {
    if (m_tree_timer && m_tree_poll_every == every) {
        return;
    }
    if (m_tree_timer) {
        m_loop.remove(m_tree_timer);
    }
    m_tree_poll_every = every;
    m_tree_timer = m_loop.add_repeating_timer(every, [this] { poll_tree(); });
}

void Supervisor::poll_tree() {
    if (!m_tree) {
        return;
    }
    auto live = m_tree->refresh();
    if (!m_terminating) {
        return;
    }
    if (m_killing) {
        // Something may have forked between the kill and this scan.
        for (pid_t pid : live) {
            ::kill(pid, SIGKILL);
        }
    }
    if (!live.empty() || !m_main_exited) {
        return;
    }
    // Nothing of the run is left: read the PTY to the end, then report.
    drain_pty(true);
    close_pty();
    if (m_tree_timer) {
        m_loop.remove(m_tree_timer);
        m_tree_timer = 0;
    }
    m_probe.reset();
    m_tree.reset();
    m_terminating = false;
    m_killing = false;
    m_machine.tree_empty();
    perform_actions();
}

void Supervisor::arm_deadline_timer() {
    auto deadline = m_machine.next_deadline();
    if (deadline == m_armed_deadline && (m_deadline_timer || !deadline)) {
        return;
    }
    if (m_deadline_timer) {
        m_loop.remove(m_deadline_timer);
        m_deadline_timer = 0;
    }
    m_armed_deadline = deadline;
    if (!deadline) {
        return;
    }
    auto delay = *deadline - m_clock.now();
    // Round up: a timer firing a hair early would find nothing due.
    auto ms = std::chrono::ceil<Millis>(std::max(delay, decltype(delay)::zero()));
    m_deadline_timer = m_loop.add_timer(ms, [this] {
        m_deadline_timer = 0;
        m_armed_deadline.reset();
        m_machine.on_tick();
        perform_actions();
    });
}

void Supervisor::run_probe() {
    if (!m_probe) {
        m_machine.probe_result(false, "probe could not be created");
        return;
    }
    auto alive = m_alive;
    m_probe->run_once([this, alive](ProbeOutcome outcome) {
        if (!*alive) {
            return;
        }
        // Called from the loop; never from inside run_once (the probe
        // answers asynchronously), so the machine is not re-entered.
        m_machine.probe_result(outcome.ok, std::move(outcome.detail));
        perform_actions();
    });
}

void Supervisor::on_notify_readable() {
    for (;;) {
        char data[4096];
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
        iovec iov{data, sizeof data - 1};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t n = ::recvmsg(m_notify_fd.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            // EAGAIN: all read. The `notify:` lines logged here reach the
            // file even if no output or state change follows.
            schedule_flush();
            return;
        }
        data[n] = '\0';
        const ucred* cred = nullptr;
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                cred = reinterpret_cast<const ucred*>(CMSG_DATA(c));
            }
        }
        std::string_view text(data, static_cast<size_t>(n));
        bool member = false;
        if (cred && m_tree) {
            if (cred->pid == m_pid) {
                member = true;
            } else {
                auto pids = m_tree->refresh();
                member = std::find(pids.begin(), pids.end(), cred->pid) != pids.end();
            }
            // A sender that exited before we read its datagram (`systemd-notify
            // --ready` does exactly that) can no longer be placed in the tree.
            // The socket's name was given only to this service, so a datagram
            // from our own uid whose sender is gone is the service's; other
            // uids (abstract sockets are reachable by anyone) stay refused.
            // An exited sender its parent has not reaped yet is a zombie:
            // cgroup.procs no longer lists it, yet kill(pid, 0) still works.
            if (!member && cred->uid == ::geteuid()) {
                if (::kill(cred->pid, 0) != 0) {
                    member = errno == ESRCH;
                } else if (auto stat = read_proc_stat(cred->pid)) {
                    member = stat->state == 'Z';
                }
            }
        }
        if (!member) {
            m_logs->write_system(
                fmt::format("notify: ignored a message from pid {} (not part of "
                            "this service)",
                            cred ? cred->pid : 0));
            continue;
        }
        bool ready = false;
        size_t start = 0;
        while (start < text.size()) {
            size_t end = text.find('\n', start);
            if (end == std::string_view::npos) {
                end = text.size();
            }
            std::string_view line = text.substr(start, end - start);
            if (line == "READY=1") {
                ready = true;
            } else if (line.starts_with("STATUS=")) {
                m_logs->write_system(fmt::format("notify: {}", line.substr(7)));
            }
            start = end + 1;
        }
        const auto& probe = m_machine.config().probe;
        if (ready && probe && probe->kind == ProbeKind::Notify) {
            m_machine.passive_ready("READY=1");
            perform_actions();
        }
    }
}

void Supervisor::notify_observers() {
    const ServiceStatus& status = m_machine.status();
    const bool new_backoff = status.state == ServiceState::Starting && status.next_start_at &&
                             status.next_start_at != m_logged_next_start;
    if (status.state != m_logged_state || new_backoff) {
        switch (status.state) {
            case ServiceState::Ready:
                m_logs->write_system("ready");
                break;
            case ServiceState::Starting:
                if (status.next_start_at) {
                    // A plain exit was logged when it happened; a probe failure
                    // is news and is logged with the restart.
                    std::string_view reason = status.reason;
                    if (status.last_exit) {
                        std::string exit_prefix = status.last_exit->describe() + "; ";
                        if (reason.starts_with(exit_prefix)) {
                            reason.remove_prefix(exit_prefix.size());
                        }
                    }
                    m_logs->write_system(fmt::format("{} (restart {} in a row)", reason,
                                                     status.consecutive_failures));
                    m_logged_next_start = status.next_start_at;
                }
                break;
            case ServiceState::Stopped:
                if (m_logged_state != ServiceState::Pending) {
                    m_logs->write_system("stopped");  // not for one that never started
                }
                break;
            case ServiceState::Exited:
                // "exited with code N" was logged at the exit; say it is final.
                m_logs->write_system("not restarting (restart policy)");
                break;
            case ServiceState::Failed:
                m_logs->write_system(fmt::format("failed: {}", status.reason));
                break;
            default:
                break;
        }
        m_logs->flush();
        m_logged_state = status.state;
    }
    auto alive = m_alive;
    auto observers = m_observers;  // an observer may remove itself
    for (auto& [id, observer] : observers) {
        observer(status);
        if (!*alive) {
            return;
        }
    }
}

base::Result<size_t> Supervisor::write_input(std::string_view bytes) {
    if (!m_master) {
        return base::failed_precondition("service `{}` has no running process", m_options.name);
    }
    return host::write_input(m_master.get(), bytes);
}

base::Result<void> Supervisor::resize(PtySize size) {
    m_size = size;
    if (m_master) {
        TRY(set_window_size(m_master.get(), size));
    }
    return base::ok();
}

std::vector<pid_t> Supervisor::processes() {
    std::vector<pid_t> out;
    if (!m_tree) {
        return out;
    }
    auto live = m_tree->refresh();
    if (m_pid > 0 && std::find(live.begin(), live.end(), m_pid) != live.end()) {
        out.push_back(m_pid);
    }
    for (pid_t pid : live) {
        if (pid != m_pid) {
            out.push_back(pid);
        }
    }
    return out;
}

bool Supervisor::uses_cgroup() const {
    return m_tree && m_tree->uses_cgroup();
}

void Supervisor::kill_everything_now() {
    if (!m_tree && !m_pidfd) {
        close_pty();
        return;
    }
    if (m_tree) {
        m_tree->signal_all(SIGKILL);
    }
    if (m_pidfd) {
        // Blocking reap of the main process: SIGKILL cannot be ignored.
        siginfo_t info{};
        while (::waitid(static_cast<idtype_t>(3 /* P_PIDFD */), static_cast<id_t>(m_pidfd.get()),
                        &info, WEXITED) != 0 &&
               errno == EINTR) {
        }
        m_pidfd.reset();
        if (m_tree) {
            m_tree->leader_reaped();
        }
    }
    if (m_pid_watch) {
        m_loop.remove(m_pid_watch);
        m_pid_watch = 0;
    }
    // Bounded: processes in uninterruptible sleep may take a moment.
    for (int i = 0; m_tree && i < 500; ++i) {
        m_tree->signal_all(SIGKILL);
        if (m_tree->empty()) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    drain_pty(true);
    close_pty();
    m_tree.reset();
    m_pid = 0;
}

}  // namespace locald::host
