#include "daemon/ipc_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "base/log.h"
#include "daemon/internal/line_buffer.h"
#include "daemon/internal/unix_socket.h"
#include "daemon/protocol.h"

namespace locald::daemon {

namespace {

// The outcome of one non-blocking read(2)/send(2) on a client socket, with the
// errno handling of both loops in one place: EINTR is retried, EAGAIN means
// "wait for the next readiness event", anything else ends the connection.
struct IoResult {
    enum Kind { Moved, WouldBlock, Eof, Failed } kind;
    size_t bytes = 0;
};

template <typename Syscall>
IoResult nonblocking_io(Syscall syscall) {
    for (;;) {
        ssize_t n = syscall();
        if (n > 0) {
            return {IoResult::Moved, static_cast<size_t>(n)};
        }
        if (n == 0) {
            return {IoResult::Eof};  // read: the peer closed (send never returns 0 here)
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return {IoResult::WouldBlock};
        }
        return {IoResult::Failed};
    }
}

IoResult send_some(int fd, const char* data, size_t size) {
    return nonblocking_io([&] { return ::send(fd, data, size, MSG_NOSIGNAL | MSG_DONTWAIT); });
}

}  // namespace

// One client connection. Owned by the server; Calls hold weak references.
class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(IpcServer& server, base::UniqueFd fd, internal::PeerCred peer)
        : m_server(server), m_fd(std::move(fd)), m_peer(peer) {}

    base::Result<void> watch() {
        std::weak_ptr<Connection> weak = weak_from_this();
        m_watch = TRY(m_server.m_loop.add_fd(m_fd.get(), EPOLLIN | EPOLLRDHUP, [weak](uint32_t ev) {
            if (auto self = weak.lock()) {
                self->on_events(ev);
            }
        }));
        return base::ok();
    }

    void send(std::string line) {
        if (m_closed) {
            return;
        }
        if (pending() == 0) {
            // Fast path: write directly, buffer only the rest.
            IoResult sent = send_some(m_fd.get(), line.data(), line.size());
            if (sent.kind == IoResult::Moved && sent.bytes == line.size()) {
                return;
            }
            if (sent.kind == IoResult::Failed) {
                close();
                return;
            }
            m_out.assign(line, sent.bytes, std::string::npos);
            m_out_offset = 0;
            update_interest();
            return;
        }
        m_out.append(line);
    }

    size_t pending() const { return m_out.size() - m_out_offset; }
    bool closed() const { return m_closed; }

    void forget_call(int64_t id) { m_calls.erase(id); }

    void close() {
        if (m_closed) {
            return;
        }
        m_closed = true;
        m_server.m_loop.remove_fd(m_watch);
        m_fd.reset();
        // Tell unanswered calls their client is gone.
        auto calls = std::move(m_calls);
        m_calls.clear();
        for (auto& [id, weak] : calls) {
            if (auto call = weak.lock()) {
                if (!call->m_done) {
                    call->m_done = true;
                    if (call->m_on_close) {
                        auto callback = std::move(call->m_on_close);
                        callback();
                    }
                }
            }
        }
        m_server.forget(this);
    }

private:
    void update_interest() {
        uint32_t events = EPOLLIN | EPOLLRDHUP;
        if (pending() > 0) {
            events |= EPOLLOUT;
        }
        if (events != m_interest) {
            m_interest = events;
            (void)m_server.m_loop.modify_fd(m_watch, events);
        }
    }

    void on_events(uint32_t events) {
        auto keep = shared_from_this();
        if (events & EPOLLOUT) {
            flush();
        }
        if (m_closed) {
            return;
        }
        if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR)) {
            read_input();
        }
    }

    void flush() {
        while (pending() > 0) {
            IoResult sent = send_some(m_fd.get(), m_out.data() + m_out_offset, pending());
            if (sent.kind == IoResult::Failed) {
                close();
                return;
            }
            if (sent.kind != IoResult::Moved) {
                break;
            }
            m_out_offset += sent.bytes;
        }
        if (pending() == 0) {
            m_out.clear();
            m_out_offset = 0;
        } else if (m_out_offset > (1u << 20) && m_out_offset * 2 > m_out.size()) {
            m_out.erase(0, m_out_offset);
            m_out_offset = 0;
        }
        update_interest();
    }

    void read_input() {
        char buffer[65536];
        for (int round = 0; round < 16; ++round) {
            IoResult got =
                nonblocking_io([&] { return ::read(m_fd.get(), buffer, sizeof(buffer)); });
            if (got.kind == IoResult::WouldBlock) {
                break;
            }
            if (got.kind == IoResult::Failed) {
                close();
                return;
            }
            if (got.kind == IoResult::Eof) {
                dispatch_lines();
                close();
                return;
            }
            m_in.append(std::string_view(buffer, got.bytes));
            if (got.bytes < sizeof(buffer)) {
                break;
            }
        }
        dispatch_lines();
    }

    void dispatch_lines() {
        auto keep = shared_from_this();
        while (!m_closed) {
            auto line = m_in.next_line();
            if (!line) {
                break;
            }
            if (line->empty() || *line == "\r") {
                continue;
            }
            auto message = parse_message(*line);
            if (!message) {
                send(encode_error(0, message.error()));
                continue;
            }
            if (message->kind != Message::Kind::Request) {
                send(encode_error(message->id, base::invalid_argument(
                                                   "protocol: the daemon only takes requests")));
                continue;
            }
            auto call =
                std::make_shared<Call>(weak_from_this(), message->id, std::move(message->method),
                                       std::move(message->body), m_peer.uid, m_peer.pid);
            m_calls[call->id()] = call;
            m_server.m_handler(call);
        }
    }

    IpcServer& m_server;
    base::UniqueFd m_fd;
    internal::PeerCred m_peer;
    base::EventLoop::WatchId m_watch = 0;
    uint32_t m_interest = EPOLLIN | EPOLLRDHUP;
    internal::LineBuffer m_in;
    std::string m_out;
    size_t m_out_offset = 0;
    bool m_closed = false;
    std::map<int64_t, std::weak_ptr<Call>> m_calls;
};

Call::Call(std::weak_ptr<Connection> connection, int64_t id, std::string method, base::Json params,
           uid_t peer_uid, pid_t peer_pid)
    : m_connection(std::move(connection)),
      m_id(id),
      m_method(std::move(method)),
      m_params(std::move(params)),
      m_peer_uid(peer_uid),
      m_peer_pid(peer_pid) {}

bool Call::open() const {
    if (m_done) {
        return false;
    }
    auto connection = m_connection.lock();
    return connection && !connection->closed();
}

size_t Call::backlog() const {
    auto connection = m_connection.lock();
    return connection ? connection->pending() : 0;
}

void Call::event(const base::Json& event, bool droppable) {
    if (m_done) {
        return;
    }
    auto connection = m_connection.lock();
    if (!connection) {
        return;
    }
    if (droppable && connection->pending() > IpcServer::kMaxBufferedBytes) {
        ++m_dropped;
        return;
    }
    connection->send(encode_event(m_id, event));
}

void Call::finish(const base::Json& result) {
    if (m_done) {
        return;
    }
    m_done = true;
    m_on_close = nullptr;
    if (auto connection = m_connection.lock()) {
        connection->send(encode_result(m_id, result));
        connection->forget_call(m_id);
    }
}

void Call::fail(const base::Error& error) {
    if (m_done) {
        return;
    }
    m_done = true;
    m_on_close = nullptr;
    if (auto connection = m_connection.lock()) {
        connection->send(encode_error(m_id, error));
        connection->forget_call(m_id);
    }
}

base::Result<std::unique_ptr<IpcServer>> IpcServer::create(base::EventLoop& loop,
                                                           base::UniqueFd listener,
                                                           CallHandler handler) {
    std::unique_ptr<IpcServer> server(new IpcServer(loop, std::move(listener), std::move(handler)));
    IpcServer* raw = server.get();
    server->m_watch =
        TRY(loop.add_fd(server->m_listener.get(), EPOLLIN, [raw](uint32_t) { raw->on_accept(); }));
    return server;
}

IpcServer::IpcServer(base::EventLoop& loop, base::UniqueFd listener, CallHandler handler)
    : m_loop(loop), m_listener(std::move(listener)), m_handler(std::move(handler)) {}

IpcServer::~IpcServer() {
    close_all();
}

void IpcServer::close_all() {
    if (m_accept_timer != 0) {
        m_loop.cancel_timer(m_accept_timer);
        m_accept_timer = 0;
    }
    if (m_watch != 0) {
        m_loop.remove_fd(m_watch);
        m_watch = 0;
    }
    m_listener.reset();
    auto connections = m_connections;
    for (auto& connection : connections) {
        connection->close();
    }
    m_connections.clear();
}

void IpcServer::forget(Connection* connection) {
    std::erase_if(m_connections, [&](const auto& c) { return c.get() == connection; });
}

void IpcServer::pause_accepting() {
    if (m_watch == 0 || m_accept_timer != 0) {
        return;
    }
    (void)m_loop.modify_fd(m_watch, 0);
    m_accept_timer = m_loop.add_timer(kAcceptPause, [this] {
        m_accept_timer = 0;
        if (m_watch != 0) {
            (void)m_loop.modify_fd(m_watch, EPOLLIN);
        }
    });
}

void IpcServer::on_accept() {
    for (;;) {
        int fd = ::accept4(m_listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // The connection stays queued and the listener level-triggered:
                // retrying at once would spin. Pause accepting for a while.
                LOG_WARN("accepting a connection: {}; pausing accepts for {} ms",
                         std::strerror(errno), kAcceptPause.count());
                pause_accepting();
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                LOG_WARN("accepting a connection: {}", std::strerror(errno));
            }
            return;
        }
        base::UniqueFd client(fd);
        auto peer = internal::peer_cred(client.get());
        if (!peer) {
            LOG_WARN("refusing a connection: {}", peer.error().to_string());
            continue;
        }
        if (peer->uid != ::geteuid()) {
            // Same-uid only: the daemon runs the user's commands with the user's
            // rights, so anyone else talking to it would be a privilege escalation.
            LOG_WARN("refusing a connection from uid {} (pid {}): not our uid {}", peer->uid,
                     peer->pid, ::geteuid());
            std::string line = encode_error(
                0, base::permission_denied("the locald daemon only serves uid {}", ::geteuid()));
            (void)::send(client.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            continue;
        }
        auto connection = std::make_shared<Connection>(*this, std::move(client), *peer);
        if (auto watched = connection->watch(); !watched) {
            LOG_WARN("watching a connection: {}", watched.error().to_string());
            continue;
        }
        m_connections.push_back(std::move(connection));
    }
}

}  // namespace locald::daemon
