// ns/internal/net.cc — hostname (uts namespace) and loopback (network namespace).
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "ns/internal/context.h"

namespace locald::ns::internal {

base::Result<void> set_hostname(ChildContext& ctx) {
    // 5. The hostname is the service name, set in our own uts namespace.
    if (::sethostname(ctx.hostname.data(), ctx.hostname.size()) != 0) {
        return base::errno_error("sethostname(`{}`)", ctx.hostname);
    }
    return base::ok();
}

base::Result<void> bring_up_loopback(ChildContext& ctx) {
    if (ctx.spec->network != NetworkMode::None) {
        return base::ok();
    }
    // 6. network = none: a fresh network namespace has `lo` down; programs
    //    expect 127.0.0.1 to work even without any outside connectivity.
    base::UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock) {
        return base::errno_error("socket(AF_INET) for `lo`");
    }
    struct ifreq ifr;
    std::memset(&ifr, 0, sizeof ifr);
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) {
        return base::errno_error("SIOCGIFFLAGS `lo`");
    }
    ifr.ifr_flags |= IFF_UP;
    if (::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) != 0) {
        return base::errno_error("bringing up `lo`");
    }
    return base::ok();
}

}  // namespace locald::ns::internal
