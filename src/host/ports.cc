#include "host/ports.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "base/unique_fd.h"

namespace locald::host {
namespace {

// Binds `port` on `address` (SO_REUSEADDR, like servers do, so TIME_WAIT
// leftovers do not count as taken). Returns the bound port, or errno.
int try_bind(uint32_t address, uint16_t port, uint16_t* bound) {
    base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        return errno;
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(address);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        return errno;
    }
    if (bound) {
        socklen_t len = sizeof addr;
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
        *bound = ntohs(addr.sin_port);
    }
    return 0;
}

// Inodes of sockets listening on `port` in /proc/net/tcp or tcp6.
std::vector<unsigned long> listening_inodes(uint16_t port) {
    std::vector<unsigned long> inodes;
    for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::ifstream in(table);
        std::string line;
        std::getline(in, line);  // header
        while (std::getline(in, line)) {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            std::istringstream fields(line);
            std::string sl, local, remote, state, queues, timer, retr, uid, timeout;
            unsigned long inode = 0;
            if (!(fields >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >>
                  timeout >> inode)) {
                continue;
            }
            size_t colon = local.rfind(':');
            if (colon == std::string::npos) {
                continue;
            }
            unsigned long local_port = std::strtoul(local.c_str() + colon + 1, nullptr, 16);
            // 0A = TCP_LISTEN
            if (local_port == port && state == "0A" && inode != 0) {
                inodes.push_back(inode);
            }
        }
    }
    return inodes;
}

std::string read_cmdline(pid_t pid) {
    std::ifstream in(fmt::format("/proc/{}/cmdline", pid), std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!data.empty() && data.back() == '\0') {
        data.pop_back();
    }
    std::replace(data.begin(), data.end(), '\0', ' ');
    if (data.size() > 200) {
        data = data.substr(0, 200) + "…";
    }
    return data;
}

}  // namespace

std::optional<PortHolder> find_port_holder(uint16_t port) {
    auto inodes = listening_inodes(port);
    if (inodes.empty()) {
        return std::nullopt;
    }
    PortHolder holder;
    holder.inode = inodes.front();
    std::vector<std::string> wanted;
    for (auto inode : inodes) {
        wanted.push_back(fmt::format("socket:[{}]", inode));
    }
    DIR* proc = ::opendir("/proc");
    if (!proc) {
        return holder;
    }
    while (dirent* entry = ::readdir(proc)) {
        char* end = nullptr;
        long pid = std::strtol(entry->d_name, &end, 10);
        if (pid <= 0 || *end != '\0') {
            continue;
        }
        std::string fd_dir = fmt::format("/proc/{}/fd", pid);
        DIR* fds = ::opendir(fd_dir.c_str());
        if (!fds) {
            continue;  // another user's process, or gone
        }
        bool found = false;
        while (dirent* fd_entry = ::readdir(fds)) {
            if (fd_entry->d_name[0] == '.') {
                continue;
            }
            char target[64];
            std::string link = fd_dir + "/" + fd_entry->d_name;
            ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
            if (n <= 0) {
                continue;
            }
            target[n] = '\0';
            for (const auto& w : wanted) {
                if (w == target) {
                    found = true;
                    break;
                }
            }
            if (found) {
                break;
            }
        }
        ::closedir(fds);
        if (found) {
            holder.pid = static_cast<pid_t>(pid);
            holder.command = read_cmdline(holder.pid);
            break;
        }
    }
    ::closedir(proc);
    return holder;
}

base::Result<void> check_port_available(uint16_t port) {
    if (port == 0) {
        return base::invalid_argument("port 0 cannot be pinned");
    }
    int err = try_bind(INADDR_ANY, port, nullptr);
    if (err == 0) {
        err = try_bind(INADDR_LOOPBACK, port, nullptr);
    }
    if (err == 0) {
        return base::ok();
    }
    if (err != EADDRINUSE) {
        return base::Error::from_errno(err, fmt::format("binding port {}", port));
    }
    auto holder = find_port_holder(port);
    if (holder && holder->pid > 0) {
        return base::already_exists("port {} is already in use by pid {} (`{}`)", port, holder->pid,
                                    holder->command);
    }
    return base::already_exists("port {} is already in use (by a process we cannot see)", port);
}

base::Result<uint16_t> allocate_free_port(const std::set<uint16_t>& avoid) {
    // The kernel picks from the ephemeral range; retry when it hands us one
    // we promised to someone else or one taken on the other address.
    for (int attempt = 0; attempt < 64; ++attempt) {
        uint16_t port = 0;
        int err = try_bind(INADDR_ANY, 0, &port);
        if (err != 0) {
            return base::Error::from_errno(err, "binding an ephemeral port");
        }
        if (avoid.count(port) || try_bind(INADDR_LOOPBACK, port, nullptr) != 0) {
            continue;
        }
        return port;
    }
    return base::unavailable("no free TCP port found after 64 attempts");
}

}  // namespace locald::host
