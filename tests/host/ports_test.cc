#include "host/ports.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/unique_fd.h"

namespace locald::host {
namespace {

base::UniqueFd listen_on(uint16_t port) {
    base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd.get(), 4), 0);
    return fd;
}

TEST(Ports, AllocatedPortIsFreeAndAvoidsGivenOnes) {
    auto port = allocate_free_port();
    ASSERT_TRUE(port.has_value()) << port.error().to_string();
    EXPECT_NE(*port, 0);
    EXPECT_TRUE(check_port_available(*port).has_value());
    auto other = allocate_free_port({*port});
    ASSERT_TRUE(other.has_value());
    EXPECT_NE(*other, *port);
}

TEST(Ports, TakenPinnedPortNamesTheHolder) {
    auto port = allocate_free_port();
    ASSERT_TRUE(port.has_value());
    auto listener = listen_on(*port);
    auto checked = check_port_available(*port);
    ASSERT_FALSE(checked.has_value());
    EXPECT_EQ(checked.error().kind(), base::ErrorKind::AlreadyExists);
    EXPECT_NE(checked.error().message().find(
                  fmt::format("port {} is already in use by pid {} (`", *port, ::getpid())),
              std::string::npos)
        << checked.error().message();
    EXPECT_NE(checked.error().message().find("host_tests"), std::string::npos);
    auto holder = find_port_holder(*port);
    ASSERT_TRUE(holder.has_value());
    EXPECT_EQ(holder->pid, ::getpid());
    EXPECT_NE(holder->inode, 0u);
    listener.reset();
    EXPECT_FALSE(find_port_holder(*port).has_value());
}

TEST(Ports, PortZeroCannotBePinned) {
    EXPECT_EQ(check_port_available(0).error().kind(), base::ErrorKind::InvalidArgument);
}

}  // namespace
}  // namespace locald::host
