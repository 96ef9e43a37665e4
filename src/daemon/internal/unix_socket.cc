#include "daemon/internal/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace locald::daemon::internal {

namespace {

base::Result<sockaddr_un> make_address(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof(address.sun_path)) {
        return base::invalid_argument(
            "socket path `{}` is too long ({} bytes, the kernel allows {}); use a shorter "
            "LOCALD_HOME or XDG_RUNTIME_DIR",
            path, path.size(), sizeof(address.sun_path) - 1);
    }
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    return address;
}

}  // namespace

base::Result<base::UniqueFd> listen_unix(const std::string& path) {
    sockaddr_un address = TRY(make_address(path));
    base::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
        return base::errno_error("creating a Unix socket");
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        return base::errno_error("removing the stale socket `{}`", path);
    }
    // The socket file must never exist with a wider mode, not even briefly.
    mode_t old_mask = ::umask(0177);
    int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address));
    int bind_errno = errno;
    ::umask(old_mask);
    if (rc != 0) {
        return base::Error::from_errno(bind_errno, fmt::format("binding `{}`", path));
    }
    if (::chmod(path.c_str(), 0600) != 0) {
        return base::errno_error("setting the mode of `{}`", path);
    }
    if (::listen(fd.get(), 64) != 0) {
        return base::errno_error("listening on `{}`", path);
    }
    return fd;
}

base::Result<base::UniqueFd> connect_unix(const std::string& path) {
    sockaddr_un address = TRY(make_address(path));
    base::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        return base::errno_error("creating a Unix socket");
    }
    int rc;
    do {
        rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address));
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        int err = errno;
        if (err == ECONNREFUSED || err == ENOENT) {
            return base::Error(base::ErrorKind::Unavailable,
                               fmt::format("connecting to the daemon at `{}`", path), err);
        }
        return base::Error::from_errno(err, fmt::format("connecting to `{}`", path));
    }
    return fd;
}

base::Result<PeerCred> peer_cred(int fd) {
    ucred cred{};
    socklen_t length = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) {
        return base::errno_error("reading the peer credentials");
    }
    return PeerCred{cred.pid, cred.uid, cred.gid};
}

}  // namespace locald::daemon::internal
