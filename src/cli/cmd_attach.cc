// `locald attach SERVICE`: the service's PTY in this terminal.
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "base/sys.h"
#include "cli/args.h"
#include "cli/command.h"
#include "cli/commands_list.h"
#include "cli/ipc_client.h"

namespace locald::cli {

const char kAttachHelp[] =
    "usage: locald attach SERVICE\n"
    "\n"
    "Connects this terminal to the service's PTY: you see its output as it comes\n"
    "and your keystrokes go to it (Ctrl-C goes to the service, not to locald); the\n"
    "window size follows yours.\n"
    "\n"
    "Detach with Ctrl-] (the service keeps running). attach also ends when the\n"
    "service stops or exits.\n";

namespace {

constexpr char kDetachKey = 0x1d;  // Ctrl-]
volatile sig_atomic_t g_winch = 0;

void on_winch(int) {
    g_winch = 1;
}

class RawMode {
public:
    RawMode() {
        if (::isatty(0) && ::tcgetattr(0, &m_saved) == 0) {
            termios raw = m_saved;
            ::cfmakeraw(&raw);
            if (::tcsetattr(0, TCSANOW, &raw) == 0) {
                m_active = true;
            }
        }
    }
    ~RawMode() {
        if (m_active) {
            ::tcsetattr(0, TCSANOW, &m_saved);
        }
    }

private:
    termios m_saved{};
    bool m_active = false;
};

std::pair<int, int> window_size() {
    winsize ws{};
    if (::ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
        return {ws.ws_row, ws.ws_col};
    }
    return {0, 0};
}

}  // namespace

int run_attach(std::span<const std::string> args) {
    auto parsed = parse_args(args, {});
    if (!parsed) {
        return report_usage("attach", parsed.error());
    }
    if (parsed->positional().size() != 1) {
        return report_usage("attach", base::invalid_argument("expected exactly one SERVICE"));
    }
    auto client = connect_daemon();
    if (!client) {
        return report_error(client.error());
    }
    auto [rows, cols] = window_size();
    auto attach_id =
        client->send_request("attach", base::Json::object({{"name", parsed->positional().front()},
                                                           {"cwd", current_dir()},
                                                           {"rows", rows},
                                                           {"cols", cols}}));
    if (!attach_id) {
        return report_error(attach_id.error());
    }
    // Wait for the daemon's answer before touching the terminal.
    int64_t session = -1;
    std::string service;
    while (session < 0) {
        auto message = client->read_message();
        if (!message) {
            return report_error(message.error());
        }
        if (message->id != *attach_id) {
            continue;
        }
        if (message->kind == daemon::Message::Kind::Error) {
            return report_error(*message->error);
        }
        if (message->kind == daemon::Message::Kind::Result) {
            return kExitOk;
        }
        if (const auto* attached = message->body.find("attached"); attached) {
            session = attached->find("session")->as_int();
            service = attached->find("service")->as_string();
        }
    }
    // SIGWINCH stays blocked except inside ppoll, which unblocks it
    // atomically: a resize landing between the g_winch check and the wait
    // would otherwise sleep until the next byte of output.
    struct sigaction action {};
    action.sa_handler = on_winch;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGWINCH, &action, nullptr);
    sigset_t winch_only;
    sigset_t wait_mask;
    sigemptyset(&winch_only);
    sigaddset(&winch_only, SIGWINCH);
    ::sigprocmask(SIG_BLOCK, &winch_only, &wait_mask);
    sigdelset(&wait_mask, SIGWINCH);

    int exit_code = kExitOk;
    std::string reason;
    {
        RawMode raw;
        // Announced once resizes and keystrokes are handled, so what follows
        // the line reaches the service.
        std::fprintf(stderr, "locald: attached to %s; detach with Ctrl-]\r\n", service.c_str());
        bool stdin_open = true;
        for (;;) {
            if (g_winch) {
                g_winch = 0;
                auto [r, c] = window_size();
                if (r > 0) {
                    (void)client->send_request(
                        "attach_resize",
                        base::Json::object({{"session", session}, {"rows", r}, {"cols", c}}));
                }
            }
            // Messages already buffered first.
            bool ended = false;
            for (;;) {
                auto message = client->buffered_message();
                if (!message) {
                    reason = message.error().to_string();
                    exit_code = kExitInternal;
                    ended = true;
                    break;
                }
                if (!*message) {
                    break;
                }
                const auto& m = **message;
                if (m.id != *attach_id) {
                    continue;  // answers to input/resize requests
                }
                if (m.kind == daemon::Message::Kind::Result) {
                    reason = "the service ended";
                    ended = true;
                    break;
                }
                if (m.kind == daemon::Message::Kind::Error) {
                    reason = m.error->to_string();
                    exit_code = exit_code_for(m.error->kind());
                    ended = true;
                    break;
                }
                if (const auto* data = m.body.find("data"); data && data->is_string()) {
                    auto bytes = daemon::base64_decode(data->as_string());
                    if (bytes) {
                        (void)base::write_all(1, *bytes);
                    }
                }
            }
            if (ended) {
                break;
            }
            pollfd fds[2] = {{client->fd(), POLLIN, 0}, {0, POLLIN, 0}};
            int n = ::ppoll(fds, stdin_open ? 2 : 1, nullptr, &wait_mask);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                reason = "poll failed";
                exit_code = kExitInternal;
                break;
            }
            if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (auto read = client->read_some(); !read) {
                    if (read.error().kind() == base::ErrorKind::Cancelled) {
                        continue;
                    }
                    reason = "the daemon closed the connection";
                    exit_code = kExitUnavailable;
                    break;
                }
            }
            if (stdin_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
                char buffer[4096];
                ssize_t got = ::read(0, buffer, sizeof(buffer));
                if (got <= 0) {
                    if (got < 0 && errno == EINTR) {
                        continue;
                    }
                    stdin_open = false;  // keep showing output
                    continue;
                }
                std::string_view input(buffer, static_cast<size_t>(got));
                size_t detach = input.find(kDetachKey);
                if (detach != std::string_view::npos) {
                    input = input.substr(0, detach);
                }
                if (!input.empty()) {
                    (void)client->send_request(
                        "attach_input",
                        base::Json::object(
                            {{"session", session}, {"data", daemon::base64_encode(input)}}));
                }
                if (detach != std::string_view::npos) {
                    reason = "detached";
                    break;
                }
            }
        }
    }
    // Say what happened to the service, not "keeps running unless it ended".
    if (reason == "detached") {
        std::fprintf(stderr, "\r\nlocald: detached; %s keeps running\n", service.c_str());
    } else if (reason == "the service ended") {
        std::fprintf(stderr, "\r\nlocald: %s ended (`locald status %s` says how)\n",
                     service.c_str(), service.c_str());
    } else {
        std::fprintf(stderr, "\r\nlocald: %s\n", reason.c_str());
    }
    return exit_code;
}

}  // namespace locald::cli
