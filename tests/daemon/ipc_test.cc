// The IPC server and client over a real Unix socket, with the event loop on
// its own thread (as in the daemon, every call is handled on the loop thread).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "base/event_loop.h"
#include "base/log.h"
#include "base/sys.h"
#include "base/temp_dir.h"
#include "daemon/client.h"
#include "daemon/internal/unix_socket.h"
#include "daemon/ipc_server.h"

namespace locald::daemon {
namespace {

class IpcTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto dir = base::TempDir::create("locald-ipc-test");
        ASSERT_TRUE(dir);
        m_dir.emplace(std::move(*dir));
        m_socket = m_dir->path() + "/daemon.sock";
        auto loop = base::EventLoop::create();
        ASSERT_TRUE(loop);
        m_loop.emplace(std::move(*loop));
        auto listener = internal::listen_unix(m_socket);
        ASSERT_TRUE(listener) << listener.error().to_string();
        auto server = IpcServer::create(*m_loop, std::move(*listener),
                                        [this](std::shared_ptr<Call> call) { handle(call); });
        ASSERT_TRUE(server);
        m_server = std::move(*server);
        m_thread = std::thread([this] { (void)m_loop->run(); });
    }

    void TearDown() override {
        if (m_loop) {
            m_loop->post([this] { m_server.reset(); });
            m_loop->stop();
        }
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }

    void handle(std::shared_ptr<Call> call) {
        const auto& params = call->params();
        if (call->method() == "echo") {
            call->finish(params);
        } else if (call->method() == "count") {
            int64_t n = params.find("n")->as_int();
            for (int64_t i = 0; i < n; ++i) {
                call->event(base::Json::object({{"i", i}}));
            }
            call->finish(base::Json(n));
        } else if (call->method() == "size") {
            call->finish(base::Json(static_cast<int64_t>(params.find("blob")->as_string().size())));
        } else if (call->method() == "hang") {
            m_hanging = call;
            call->on_close([this] { m_closed = true; });
            call->event(base::Json::object({{"waiting", true}}));
        } else {
            call->fail(base::not_found("no method `{}`", call->method()));
        }
    }

    std::optional<base::TempDir> m_dir;
    std::string m_socket;
    std::optional<base::EventLoop> m_loop;
    std::unique_ptr<IpcServer> m_server;
    std::thread m_thread;
    std::shared_ptr<Call> m_hanging;
    std::atomic<bool> m_closed{false};
};

TEST_F(IpcTest, SocketIsPrivate) {
    struct stat st {};
    ASSERT_EQ(::stat(m_socket.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(IpcTest, ManyRequestsOnOneConnectionWithEvents) {
    auto client = Client::connect(m_socket);
    ASSERT_TRUE(client) << client.error().to_string();
    for (int round = 0; round < 3; ++round) {
        std::vector<int64_t> seen;
        auto result =
            client->call("count", base::Json::object({{"n", 5}}), [&](const base::Json& event) {
                seen.push_back(event.find("i")->as_int());
                return true;
            });
        ASSERT_TRUE(result) << result.error().to_string();
        EXPECT_EQ(result->as_int(), 5);
        EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3, 4}));
    }
    auto echoed = client->call("echo", base::Json::object({{"a", "b"}}));
    ASSERT_TRUE(echoed);
    EXPECT_EQ(echoed->find("a")->as_string(), "b");
}

TEST_F(IpcTest, ErrorsKeepTheirKind) {
    auto client = Client::connect(m_socket);
    ASSERT_TRUE(client);
    auto result = client->call("nope", base::Json::object());
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind(), base::ErrorKind::NotFound);
    EXPECT_NE(result.error().message().find("nope"), std::string::npos);
    // The connection is still usable.
    EXPECT_TRUE(client->call("echo", base::Json::object()));
}

TEST_F(IpcTest, RequestsOfAnySize) {
    auto client = Client::connect(m_socket);
    ASSERT_TRUE(client);
    std::string blob(24u << 20, 'z');
    auto result = client->call("size", base::Json::object({{"blob", blob}}));
    ASSERT_TRUE(result) << result.error().to_string();
    EXPECT_EQ(result->as_int(), static_cast<int64_t>(blob.size()));
}

TEST_F(IpcTest, GarbageLineGetsAnErrorAndTheConnectionSurvives) {
    auto client = Client::connect(m_socket);
    ASSERT_TRUE(client);
    std::string garbage = "this is not json\n";
    ASSERT_EQ(::write(client->fd(), garbage.data(), garbage.size()),
              static_cast<ssize_t>(garbage.size()));
    auto message = client->read_message();
    ASSERT_TRUE(message);
    EXPECT_EQ(message->kind, Message::Kind::Error);
    EXPECT_EQ(message->error->kind(), base::ErrorKind::InvalidArgument);
    EXPECT_TRUE(client->call("echo", base::Json::object()));
}

TEST_F(IpcTest, DisconnectRunsOnClose) {
    {
        auto client = Client::connect(m_socket);
        ASSERT_TRUE(client);
        ASSERT_TRUE(client->send_request("hang", base::Json::object()));
        auto event = client->read_message();
        ASSERT_TRUE(event);
        EXPECT_EQ(event->kind, Message::Kind::Event);
    }
    for (int i = 0; i < 500 && !m_closed; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(m_closed);
}

TEST_F(IpcTest, ConnectWithoutServerIsUnavailable) {
    auto client = Client::connect(m_dir->path() + "/nothing.sock");
    ASSERT_FALSE(client);
    EXPECT_EQ(client.error().kind(), base::ErrorKind::Unavailable);
}

// Root only: a peer with another uid is refused by SO_PEERCRED even when the
// file permissions would let it in (the test widens them on purpose).
TEST_F(IpcTest, OtherUidIsRefused) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "needs root to connect as another uid";
    }
    ASSERT_EQ(::chmod(m_dir->path().c_str(), 0755), 0);
    ASSERT_EQ(::chmod(m_socket.c_str(), 0666), 0);
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(pipe_fds[0]);
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) {
            ::_exit(2);
        }
        auto client = Client::connect(m_socket);
        if (!client) {
            ::_exit(3);
        }
        auto result = client->call("echo", base::Json::object());
        char verdict =
            result ? 'A' : (result.error().kind() == base::ErrorKind::PermissionDenied ? 'D' : 'U');
        (void)::write(pipe_fds[1], &verdict, 1);
        ::_exit(0);
    }
    ::close(pipe_fds[1]);
    char verdict = 0;
    ASSERT_EQ(::read(pipe_fds[0], &verdict, 1), 1);
    ::close(pipe_fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_EQ(verdict, 'D');
}

// Out of fds, accept4 fails with EMFILE while the connection stays queued, so
// the level-triggered listener would wake the loop at once, forever (a 100%
// CPU spin flooding the log). The server pauses accepting instead: one
// warning, not one per loop turn, and the connection is served once fds are
// back.
TEST(IpcAccept, OutOfFdsPausesAcceptingInsteadOfSpinning) {
    auto dir = base::TempDir::create("locald-ipc-emfile");
    ASSERT_TRUE(dir);
    std::string path = dir->path() + "/daemon.sock";
    auto loop = base::EventLoop::create();
    ASSERT_TRUE(loop);
    auto listener = internal::listen_unix(path);
    ASSERT_TRUE(listener) << listener.error().to_string();
    auto server = IpcServer::create(*loop, std::move(*listener), [](std::shared_ptr<Call>) {});
    ASSERT_TRUE(server);
    std::string log_path = dir->path() + "/daemon.log";
    ASSERT_TRUE(base::set_log_file(log_path));
    base::UniqueFd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(client);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(path.size(), sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);

    // No fd number is free below the limit: the next accept4 gets EMFILE.
    rlimit saved{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
    int lowest = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(lowest, 0);
    ::close(lowest);
    rlimit tight = saved;
    tight.rlim_cur = static_cast<rlim_t>(lowest);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
    for (int i = 0; i < 50; ++i) {
        (void)loop->run_once(0);
    }
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
    base::set_log_stderr();

    auto text = base::read_file(log_path, 1 << 20);
    ASSERT_TRUE(text);
    size_t warnings = 0;
    for (size_t at = text->find("accepting a connection"); at != std::string::npos;
         at = text->find("accepting a connection", at + 1)) {
        ++warnings;
    }
    EXPECT_EQ(warnings, 1u) << *text;
    EXPECT_NE(text->find("pausing accepts"), std::string::npos) << *text;
    for (int i = 0; i < 200 && (*server)->connection_count() == 0; ++i) {
        (void)loop->run_once(50);
    }
    EXPECT_EQ((*server)->connection_count(), 1u);
}

}  // namespace
}  // namespace locald::daemon
