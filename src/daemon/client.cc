#include "daemon/client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "base/sys.h"
#include "daemon/internal/unix_socket.h"

namespace locald::daemon {

base::Result<Client> Client::connect(const std::string& socket_path) {
    base::UniqueFd fd = TRY(internal::connect_unix(socket_path));
    return Client(std::move(fd));
}

base::Result<int64_t> Client::send_request(std::string_view method, const base::Json& params) {
    int64_t id = m_next_id++;
    std::string line = encode_request(id, method, params);
    size_t offset = 0;
    while (offset < line.size()) {
        // MSG_NOSIGNAL: a daemon that hangs up must give the CLI an error to
        // print, not a silent death by SIGPIPE.
        ssize_t n = ::send(m_fd.get(), line.data() + offset, line.size() - offset, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            base::Error failed = base::errno_error("sending `{}` to the daemon", method);
            // A daemon that refuses a peer says why before closing; prefer that.
            if (auto said = read_message(); said && said->kind == Message::Kind::Error) {
                return std::move(*said->error);
            }
            return base::Error(base::ErrorKind::Unavailable, failed.to_string());
        }
        offset += static_cast<size_t>(n);
    }
    return id;
}

base::Result<void> Client::read_some() {
    char buffer[65536];
    for (;;) {
        ssize_t n = ::read(m_fd.get(), buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR) {
            // Only seen when the caller installed a handler without SA_RESTART
            // (Ctrl-C detaching from `logs -f`): let it decide.
            return base::cancelled("interrupted");
        }
        if (n < 0) {
            return base::errno_error("reading from the daemon");
        }
        if (n == 0) {
            return base::unavailable("the daemon closed the connection");
        }
        m_in.append(std::string_view(buffer, static_cast<size_t>(n)));
        return base::ok();
    }
}

base::Result<std::optional<Message>> Client::buffered_message() {
    while (auto line = m_in.next_line()) {
        if (line->empty()) {
            continue;
        }
        Message message = TRY(parse_message(*line));
        return std::optional<Message>(std::move(message));
    }
    return std::optional<Message>();
}

base::Result<Message> Client::read_message() {
    for (;;) {
        auto message = TRY(buffered_message());
        if (message) {
            return std::move(*message);
        }
        TRY(read_some());
    }
}

base::Result<base::Json> Client::call(std::string_view method, const base::Json& params,
                                      const EventCallback& on_event) {
    int64_t id = TRY(send_request(method, params));
    for (;;) {
        Message message = TRY(read_message());
        if (message.id != id) {
            if (message.kind == Message::Kind::Error && message.id == 0) {
                return std::move(*message.error);
            }
            continue;
        }
        switch (message.kind) {
            case Message::Kind::Event:
                if (on_event && !on_event(message.body)) {
                    m_fd.reset();
                    return base::cancelled("`{}` abandoned", method);
                }
                break;
            case Message::Kind::Result:
                return std::move(message.body);
            case Message::Kind::Error:
                return std::move(*message.error);
            case Message::Kind::Request:
                return base::internal_error("protocol: the daemon sent a request");
        }
    }
}

}  // namespace locald::daemon
