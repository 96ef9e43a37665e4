// host/ports.h — TCP ports for services.
//
// Contract: ports are checked on 127.0.0.1 and 0.0.0.0 (a service may bind
// either). A free port comes from the kernel (bind port 0) and is verified
// free on both; `avoid` lists ports already handed out (kept across restarts
// by the daemon, which persists them). A pinned port that is taken is an
// AlreadyExists error naming the holder when it can be found: the listening
// socket's inode from /proc/net/tcp{,6}, then the process whose /proc/*/fd
// links to `socket:[inode]` (visible for our own uid, or all as root).
// Depends on base only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "base/error.h"

namespace locald::host {

struct PortHolder {
    pid_t pid = 0;        // 0 when the socket was found but not its process
    std::string command;  // /proc/<pid>/cmdline, spaces between args
    unsigned long inode = 0;
};

// A port free on 127.0.0.1 and 0.0.0.0 right now, not in `avoid`.
base::Result<uint16_t> allocate_free_port(const std::set<uint16_t>& avoid = {});

// OK when `port` can be bound; AlreadyExists "port 8080 is already in use by
// pid 123 (`python3 -m http.server 8080`)" otherwise.
base::Result<void> check_port_available(uint16_t port);

// The process listening on TCP `port` (IPv4 or IPv6), if any can be found.
std::optional<PortHolder> find_port_holder(uint16_t port);

}  // namespace locald::host
