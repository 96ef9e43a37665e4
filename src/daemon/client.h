// daemon/client.h — the CLI's side of the socket: a blocking NDJSON client.
//
// Contract: `connect` only connects (Unavailable when no daemon listens);
// starting the daemon when needed is the CLI's job (cli/ipc_client.h). `call`
// sends one request and blocks until its result or error, handing each event
// to `on_event` in order; an `on_event` returning false abandons the call
// (the connection is then closed, which the daemon sees as a disconnect).
// For interactive streams (`attach`) the caller uses `send_request`,
// `read_message` and `fd()` with its own poll loop.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/json.h"
#include "base/unique_fd.h"
#include "daemon/internal/line_buffer.h"
#include "daemon/protocol.h"

namespace locald::daemon {

class Client {
public:
    static base::Result<Client> connect(const std::string& socket_path);

    using EventCallback = std::function<bool(const base::Json& event)>;
    base::Result<base::Json> call(std::string_view method, const base::Json& params,
                                  const EventCallback& on_event = {});

    // Low level: returns the id used.
    base::Result<int64_t> send_request(std::string_view method, const base::Json& params);
    // The next message; blocks. Unavailable when the daemon closed the socket.
    base::Result<Message> read_message();
    // Parses a message already buffered, without reading (nullopt if none).
    base::Result<std::optional<Message>> buffered_message();
    // Reads what is available once (for poll loops); Unavailable on EOF,
    // Cancelled when a signal handler interrupted the read.
    base::Result<void> read_some();
    int fd() const { return m_fd.get(); }

private:
    explicit Client(base::UniqueFd fd) : m_fd(std::move(fd)) {}
    base::UniqueFd m_fd;
    internal::LineBuffer m_in;
    int64_t m_next_id = 1;
};

}  // namespace locald::daemon
