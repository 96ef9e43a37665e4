// daemon/ipc_server.h — the daemon's side of the socket.
//
// Contract: accepts connections on a listening Unix socket, refuses any peer
// whose SO_PEERCRED uid is not ours (the socket is 0600 in a 0700 dir; this is
// the second lock on the door), splits input into NDJSON lines of any size and
// hands each request to the handler as a `Call`. A Call answers with events
// and exactly one result or error; it may outlive the handler invocation
// (streaming `logs -f`, `up` progress) and learns through `on_close` that its
// client went away. Output is buffered per connection and written as the
// socket accepts it, so a slow client never blocks the daemon; a client whose
// unread output exceeds `kMaxBufferedBytes` is treated as gone for droppable
// (streaming) events. All on the event loop's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/event_loop.h"
#include "base/json.h"
#include "base/unique_fd.h"

namespace locald::daemon {

class Connection;

class Call {
public:
    Call(std::weak_ptr<Connection> connection, int64_t id, std::string method, base::Json params,
         uid_t peer_uid, pid_t peer_pid);

    int64_t id() const { return m_id; }
    const std::string& method() const { return m_method; }
    const base::Json& params() const { return m_params; }
    pid_t peer_pid() const { return m_peer_pid; }

    // False once the client disconnected or the call was answered.
    bool open() const;
    // Sends an event. With `droppable`, an event is skipped (and counted in
    // dropped()) while the client's unread output is over the limit.
    void event(const base::Json& event, bool droppable = false);
    void finish(const base::Json& result);
    void fail(const base::Error& error);
    // Bytes waiting to be written to this call's connection.
    size_t backlog() const;
    uint64_t dropped() const { return m_dropped; }

    // Runs once when the client disconnects before the call was answered
    // (cancel subscriptions, detach). Not run after finish()/fail().
    void on_close(std::function<void()> callback) { m_on_close = std::move(callback); }

private:
    friend class Connection;
    std::weak_ptr<Connection> m_connection;
    int64_t m_id;
    std::string m_method;
    base::Json m_params;
    uid_t m_peer_uid;
    pid_t m_peer_pid;
    bool m_done = false;
    uint64_t m_dropped = 0;
    std::function<void()> m_on_close;
};

using CallHandler = std::function<void(std::shared_ptr<Call>)>;

class IpcServer {
public:
    static constexpr size_t kMaxBufferedBytes = 32u << 20;
    // How long accepting pauses when the process is out of fds (EMFILE…).
    static constexpr std::chrono::milliseconds kAcceptPause{100};

    // Takes a listening socket (internal/unix_socket.h) and serves it.
    static base::Result<std::unique_ptr<IpcServer>> create(base::EventLoop& loop,
                                                           base::UniqueFd listener,
                                                           CallHandler handler);
    ~IpcServer();

    // Closes every connection (their calls' on_close run) and the listener.
    void close_all();
    size_t connection_count() const { return m_connections.size(); }

private:
    IpcServer(base::EventLoop& loop, base::UniqueFd listener, CallHandler handler);
    void on_accept();
    void pause_accepting();
    void forget(Connection* connection);

    friend class Connection;
    base::EventLoop& m_loop;
    base::UniqueFd m_listener;
    base::EventLoop::WatchId m_watch = 0;
    base::EventLoop::WatchId m_accept_timer = 0;
    CallHandler m_handler;
    std::vector<std::shared_ptr<Connection>> m_connections;
};

}  // namespace locald::daemon
