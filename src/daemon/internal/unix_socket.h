// daemon/internal/unix_socket.h — the Unix-socket primitives of the IPC.
//
// Contract: every fd is O_CLOEXEC. `listen_unix` creates the socket file with
// mode 0600 (umask 0177 around bind, then an explicit fchmod-equivalent chmod)
// inside a directory the caller made 0700. `peer_uid` reads SO_PEERCRED, which
// the kernel fills at connect() time, so the uid cannot be spoofed by the peer.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/error.h"
#include "base/unique_fd.h"

namespace locald::daemon::internal {

// A listening, non-blocking SOCK_STREAM socket at `path` (an old socket file
// there is replaced; the caller holds the daemon lock, so it is stale).
base::Result<base::UniqueFd> listen_unix(const std::string& path);

// A blocking connection to `path`. NotFound/Unavailable when nobody listens.
base::Result<base::UniqueFd> connect_unix(const std::string& path);

struct PeerCred {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
};
base::Result<PeerCred> peer_cred(int fd);

}  // namespace locald::daemon::internal
