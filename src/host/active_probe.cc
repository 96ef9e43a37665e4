// Runners for the active probes (http, tcp, exec) on a base::EventLoop.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstring>

#include "base/child.h"
#include "base/event_loop.h"
#include "base/sys.h"
#include "base/unique_fd.h"
#include "host/exec_plan.h"
#include "host/probe.h"
#include "host/pty.h"

namespace locald::host {
namespace {

constexpr size_t kMaxResponse = 4096;

class ActiveProbeImpl final : public ActiveProbe {
public:
    ActiveProbeImpl(base::EventLoop& loop, ProbeSpec spec, std::vector<std::string> env,
                    std::string cwd)
        : m_loop(loop), m_spec(std::move(spec)), m_env(std::move(env)), m_cwd(std::move(cwd)) {}
    ~ActiveProbeImpl() override { cleanup(); }

    void run_once(Callback done) override {
        if (m_in_flight) {
            return;
        }
        m_in_flight = true;
        m_done = std::move(done);
        m_timer = m_loop.add_timer(m_spec.timeout, [this] {
            m_timer = 0;
            finish(false, fmt::format("timed out after {}ms", m_spec.timeout.count()));
        });
        switch (m_spec.kind) {
            case ProbeKind::Http:
            case ProbeKind::Tcp:
                start_connect();
                break;
            case ProbeKind::Exec:
                start_exec();
                break;
            default:
                finish(false, "not an active probe");
                break;
        }
    }

    void cancel() override { cleanup(); }
    bool in_flight() const override { return m_in_flight; }

private:
    void start_connect() {
        m_socket.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!m_socket) {
            finish(false, fmt::format("socket: {}", std::strerror(errno)));
            return;
        }
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(m_spec.port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = ::connect(m_socket.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        if (rc != 0 && errno != EINPROGRESS) {
            finish(false,
                   fmt::format("connect 127.0.0.1:{}: {}", m_spec.port, std::strerror(errno)));
            return;
        }
        auto watch = m_loop.add_fd(m_socket.get(), EPOLLOUT, [this](uint32_t) { on_connected(); });
        if (!watch) {
            finish(false, watch.error().to_string());
            return;
        }
        m_fd_watch = *watch;
    }

    void on_connected() {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(m_socket.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            finish(false, fmt::format("connect 127.0.0.1:{}: {}", m_spec.port, std::strerror(err)));
            return;
        }
        if (m_spec.kind == ProbeKind::Tcp) {
            finish(true, "");
            return;
        }
        std::string request = fmt::format(
            "GET {} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nUser-Agent: locald-probe\r\n"
            "Connection: close\r\n\r\n",
            m_spec.http_path, m_spec.port);
        // A few hundred bytes always fit a fresh socket's send buffer.
        ssize_t n = ::send(m_socket.get(), request.data(), request.size(), MSG_NOSIGNAL);
        if (n != static_cast<ssize_t>(request.size())) {
            finish(false, fmt::format("sending the http request: {}",
                                      n < 0 ? std::strerror(errno) : "short write"));
            return;
        }
        // The same fd, now waiting for the answer: a new watch with a new
        // callback (removing the current watch inside its own dispatch is allowed).
        m_loop.remove(m_fd_watch);
        auto watch = m_loop.add_fd(m_socket.get(), EPOLLIN, [this](uint32_t) { on_response(); });
        if (!watch) {
            m_fd_watch = 0;
            finish(false, watch.error().to_string());
            return;
        }
        m_fd_watch = *watch;
    }

    void on_response() {
        char buffer[1024];
        for (;;) {
            ssize_t n = ::read(m_socket.get(), buffer, sizeof buffer);
            if (n > 0) {
                m_response.append(buffer, static_cast<size_t>(n));
                if (m_response.find("\r\n") != std::string::npos ||
                    m_response.size() >= kMaxResponse) {
                    break;
                }
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                return;  // wait for more
            }
            if (n < 0) {
                finish(false, fmt::format("reading the http response: {}", std::strerror(errno)));
                return;
            }
            break;  // EOF
        }
        // "HTTP/1.1 204 No Content"
        int status = 0;
        if (std::sscanf(m_response.c_str(), "HTTP/%*d.%*d %d", &status) != 1) {
            std::string head = m_response.substr(0, m_response.find("\r\n")).substr(0, 80);
            finish(false, head.empty() ? "empty http response"
                                       : fmt::format("not an http response: `{}`", head));
            return;
        }
        if (status >= 200 && status < 400) {
            finish(true, fmt::format("http {}", status));
        } else {
            finish(false, fmt::format("http {}", status));
        }
    }

    void start_exec() {
        auto program = resolve_command(m_spec.exec_argv[0], find_env(m_env, "PATH"), m_cwd);
        if (!program) {
            finish(false, program.error().to_string());
            return;
        }
        auto pipe = base::make_pipe(O_NONBLOCK);
        if (!pipe) {
            finish(false, pipe.error().to_string());
            return;
        }
        std::vector<char*> argv;
        for (auto& arg : m_spec.exec_argv) {
            argv.push_back(const_cast<char*>(arg.c_str()));
        }
        argv.push_back(nullptr);
        std::vector<char*> envp;
        for (auto& entry : m_env) {
            envp.push_back(const_cast<char*>(entry.c_str()));
        }
        envp.push_back(nullptr);
        const std::string& path = *program;
        int out_fd = pipe->write.get();
        const char* cwd = m_cwd.empty() ? nullptr : m_cwd.c_str();
        auto child = base::Child::spawn([&]() -> int {
            // Own process group, so a timeout kills whatever the check started.
            ::setpgid(0, 0);
            sigset_t empty;
            sigemptyset(&empty);
            ::sigprocmask(SIG_SETMASK, &empty, nullptr);
            for (int sig = 1; sig < NSIG; ++sig) {
                if (sig != SIGKILL && sig != SIGSTOP) {
                    ::signal(sig, SIG_DFL);
                }
            }
            int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            ::dup2(null, 0);
            ::dup2(out_fd, 1);
            ::dup2(out_fd, 2);
            if (cwd && ::chdir(cwd) != 0) {
                return 126;
            }
            ::execve(path.c_str(), argv.data(), envp.data());
            return 127;
        });
        if (!child) {
            finish(false, child.error().to_string());
            return;
        }
        m_child = child.release_value();
        pipe->write.reset();
        m_output_fd = std::move(pipe->read);
        auto out_watch =
            m_loop.add_fd(m_output_fd.get(), EPOLLIN, [this](uint32_t) { read_output(); });
        if (out_watch) {
            m_fd_watch = *out_watch;
        }
        auto exit_watch = m_loop.watch_pidfd(m_child.pidfd(), [this] {
            m_pid_watch = 0;
            on_exec_exit();
        });
        if (!exit_watch) {
            finish(false, exit_watch.error().to_string());
            return;
        }
        m_pid_watch = *exit_watch;
    }

    void read_output() {
        char buffer[1024];
        for (;;) {
            ssize_t n = ::read(m_output_fd.get(), buffer, sizeof buffer);
            if (n > 0) {
                if (m_response.size() < kMaxResponse) {
                    m_response.append(buffer, static_cast<size_t>(n));
                }
                continue;
            }
            if (n == 0 && m_fd_watch) {
                m_loop.remove(m_fd_watch);  // EOF: stop the level-triggered wakeups
                m_fd_watch = 0;
            }
            return;
        }
    }

    void on_exec_exit() {
        read_output();
        auto status = m_child.try_wait();
        // The check's own children (its process group) do not outlive it.
        ::kill(-m_child.pid(), SIGKILL);
        if (!status || !status.value()) {
            finish(false, "exec probe: could not collect the exit status");
            return;
        }
        base::ExitStatus exit = *status.value();
        if (exit.success()) {
            finish(true, "");
            return;
        }
        std::string first_line = m_response.substr(0, m_response.find('\n'));
        if (first_line.size() > 200) {
            first_line.resize(200);
        }
        std::string what = exit.is_exited() && exit.code() == 127 ? std::string("could not execute")
                                                                  : exit.to_string();
        finish(false, first_line.empty() ? what : fmt::format("{}: {}", what, first_line));
    }

    void cleanup() {
        if (m_timer) {
            m_loop.remove(m_timer);
            m_timer = 0;
        }
        if (m_fd_watch) {
            m_loop.remove(m_fd_watch);
            m_fd_watch = 0;
        }
        if (m_pid_watch) {
            m_loop.remove(m_pid_watch);
            m_pid_watch = 0;
        }
        m_socket.reset();
        m_output_fd.reset();
        if (m_child.valid()) {
            ::kill(-m_child.pid(), SIGKILL);
            m_child = base::Child();  // kills and reaps
        }
        m_response.clear();
        m_in_flight = false;
        m_done = nullptr;
    }

    void finish(bool ok, std::string detail) {
        Callback done = std::move(m_done);
        cleanup();
        if (done) {
            done(ProbeOutcome{ok, std::move(detail)});
        }
    }

    base::EventLoop& m_loop;
    ProbeSpec m_spec;
    std::vector<std::string> m_env;
    std::string m_cwd;
    bool m_in_flight = false;
    Callback m_done;
    base::EventLoop::WatchId m_timer = 0;
    base::EventLoop::WatchId m_fd_watch = 0;
    base::EventLoop::WatchId m_pid_watch = 0;
    base::UniqueFd m_socket;
    base::UniqueFd m_output_fd;
    base::Child m_child;
    std::string m_response;
};

}  // namespace

base::Result<std::unique_ptr<ActiveProbe>> ActiveProbe::create(base::EventLoop& loop,
                                                               ProbeSpec spec,
                                                               std::vector<std::string> env,
                                                               std::string cwd) {
    TRY(spec.validate());
    if (!spec.is_active()) {
        return base::invalid_argument("{} probes are passive", to_string(spec.kind));
    }
    return std::unique_ptr<ActiveProbe>(
        new ActiveProbeImpl(loop, std::move(spec), std::move(env), std::move(cwd)));
}

}  // namespace locald::host
