#include "base/event_loop.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "base/sys.h"

namespace locald::base {
namespace {

using namespace std::chrono_literals;

EventLoop make_loop() {
    auto loop = EventLoop::create();
    EXPECT_TRUE(loop);
    return loop.release_value();
}

TEST(EventLoopTest, FdWatchFiresAndCanBeModified) {
    EventLoop loop = make_loop();
    Pipe pipe = make_pipe(O_NONBLOCK).release_value();
    std::string received;
    EventLoop::WatchId id = loop.add_fd(pipe.read.get(), EPOLLIN,
                                        [&](uint32_t events) {
                                            EXPECT_TRUE(events & EPOLLIN);
                                            char buffer[16];
                                            ssize_t n =
                                                ::read(pipe.read.get(), buffer, sizeof buffer);
                                            if (n > 0) {
                                                received.append(buffer, static_cast<size_t>(n));
                                            }
                                            loop.stop();
                                        })
                                .value();
    ASSERT_TRUE(write_all(pipe.write.get(), "ping"));
    ASSERT_TRUE(loop.run());
    EXPECT_EQ(received, "ping");
    // Watching for nothing: data arrives but the callback stays quiet.
    ASSERT_TRUE(loop.modify_fd(id, 0));
    ASSERT_TRUE(write_all(pipe.write.get(), "x"));
    ASSERT_TRUE(loop.run_once(0));
    EXPECT_EQ(received, "ping");
    EXPECT_EQ(loop.modify_fd(9999, EPOLLIN).error().kind(), ErrorKind::NotFound);
    loop.remove_fd(id);
    EXPECT_EQ(loop.watch_count(), 0u);
    EXPECT_FALSE(loop.add_fd(-1, EPOLLIN, [](uint32_t) {}));
}

TEST(EventLoopTest, RemovalDuringDispatchIsSafe) {
    EventLoop loop = make_loop();
    Pipe a = make_pipe().release_value();
    Pipe b = make_pipe().release_value();
    int a_calls = 0;
    int b_calls = 0;
    EventLoop::WatchId b_id = 0;
    EventLoop::WatchId a_id = 0;
    // Both are readable in the same epoll_wait round; whichever runs first
    // removes the other, which then must not run.
    a_id = loop.add_fd(a.read.get(), EPOLLIN,
                       [&](uint32_t) {
                           ++a_calls;
                           loop.remove(b_id);
                           loop.remove(a_id);  // and itself, while running
                       })
               .value();
    b_id = loop.add_fd(b.read.get(), EPOLLIN,
                       [&](uint32_t) {
                           ++b_calls;
                           loop.remove(a_id);
                           loop.remove(b_id);
                       })
               .value();
    ASSERT_TRUE(write_all(a.write.get(), "x"));
    ASSERT_TRUE(write_all(b.write.get(), "x"));
    ASSERT_TRUE(loop.run_once(1000));
    EXPECT_EQ(a_calls + b_calls, 1);
    EXPECT_EQ(loop.watch_count(), 0u);
    ASSERT_TRUE(loop.run_once(0));
    EXPECT_EQ(a_calls + b_calls, 1);
}

TEST(EventLoopTest, TimersFireInDeadlineOrder) {
    EventLoop loop = make_loop();
    std::vector<int> order;
    loop.add_timer(30ms, [&] { order.push_back(30); });
    loop.add_timer(10ms, [&] { order.push_back(10); });
    loop.add_timer(0ms, [&] { order.push_back(0); });
    EventLoop::WatchId cancelled = loop.add_timer(20ms, [&] { order.push_back(20); });
    loop.add_timer(40ms, [&] {
        order.push_back(40);
        loop.stop();
    });
    loop.cancel_timer(cancelled);
    auto start = EventLoop::Clock::now();
    ASSERT_TRUE(loop.run());
    EXPECT_EQ(order, (std::vector<int>{0, 10, 30, 40}));
    // Never early (a lower bound is not a timing assertion that can flake).
    EXPECT_GE(loop.now() - start, 40ms);
    EXPECT_EQ(loop.watch_count(), 0u);
}

TEST(EventLoopTest, TimersAddedOrCancelledFromCallbacks) {
    EventLoop loop = make_loop();
    std::vector<std::string> log;
    EventLoop::WatchId victim = 0;
    loop.add_timer(5ms, [&] {
        log.push_back("first");
        loop.cancel_timer(victim);
        loop.add_timer(0ms, [&] {
            log.push_back("nested");
            loop.stop();
        });
    });
    victim = loop.add_timer(5ms, [&] { log.push_back("victim"); });
    ASSERT_TRUE(loop.run());
    EXPECT_EQ(log, (std::vector<std::string>{"first", "nested"}));
}

TEST(EventLoopTest, RepeatingTimer) {
    EventLoop loop = make_loop();
    int ticks = 0;
    EventLoop::WatchId id = 0;
    id = loop.add_repeating_timer(2ms, [&] {
        if (++ticks == 3) {
            loop.cancel_timer(id);
            loop.add_timer(10ms, [&] { loop.stop(); });
        }
    });
    ASSERT_TRUE(loop.run());
    EXPECT_EQ(ticks, 3);
}

TEST(EventLoopTest, PostFromAnotherThread) {
    EventLoop loop = make_loop();
    std::vector<int> seen;
    std::thread producer([&] {
        for (int i = 0; i < 100; ++i) {
            loop.post([&, i] { seen.push_back(i); });
        }
        loop.post([&] { loop.stop(); });
    });
    ASSERT_TRUE(loop.run());
    producer.join();
    ASSERT_EQ(seen.size(), 100u);
    for (int i = 0; i < 100; ++i) {
        EXPECT_EQ(seen[static_cast<size_t>(i)], i);
    }
}

TEST(EventLoopTest, StopFromAnotherThreadWakesTheLoop) {
    EventLoop loop = make_loop();
    std::thread stopper([&] { loop.stop(); });
    ASSERT_TRUE(loop.run());  // would block forever without the wake-up
    stopper.join();
}

TEST(EventLoopTest, SignalsArriveThroughSignalfd) {
    EventLoop loop = make_loop();
    int first = 0;
    int second = 0;
    EventLoop::WatchId second_id =
        loop.add_signal(SIGUSR1,
                        [&](const signalfd_siginfo& info) {
                            ++second;
                            EXPECT_EQ(info.ssi_signo, static_cast<uint32_t>(SIGUSR1));
                        })
            .value();
    ASSERT_TRUE(loop.add_signal(SIGUSR1, [&](const signalfd_siginfo& info) {
        ++first;
        EXPECT_EQ(info.ssi_pid, static_cast<uint32_t>(::getpid()));
        loop.stop();
    }));
    // Blocked now: raising it does not kill the test.
    ASSERT_EQ(::raise(SIGUSR1), 0);
    ASSERT_TRUE(loop.run());
    EXPECT_EQ(first, 1);
    EXPECT_EQ(second, 1);
    loop.remove_signal(second_id);
    ASSERT_EQ(::raise(SIGUSR1), 0);
    ASSERT_TRUE(loop.run());
    EXPECT_EQ(first, 2);
    EXPECT_EQ(second, 1);
    EXPECT_EQ(loop.add_signal(SIGKILL, [](const signalfd_siginfo&) {}).error().kind(),
              ErrorKind::InvalidArgument);
    EXPECT_FALSE(loop.add_signal(1000, [](const signalfd_siginfo&) {}));
}

TEST(EventLoopTest, ChildExitsViaPidfd) {
    EventLoop loop = make_loop();
    Child quick = Child::spawn([] { return 3; }).release_value();
    Child killed = Child::spawn([] {
                       ::pause();
                       return 0;
                   }).release_value();
    std::vector<ExitStatus> statuses;
    ASSERT_TRUE(loop.watch_child(quick, [&](ExitStatus status) {
        statuses.push_back(status);
        ASSERT_TRUE(killed.kill(SIGTERM));
    }));
    ASSERT_TRUE(loop.watch_child(killed, [&](ExitStatus status) {
        statuses.push_back(status);
        loop.stop();
    }));
    ASSERT_TRUE(loop.run());
    ASSERT_EQ(statuses.size(), 2u);
    EXPECT_EQ(statuses[0], ExitStatus::exited(3));
    EXPECT_EQ(statuses[1], ExitStatus::killed(SIGTERM));
    EXPECT_FALSE(quick.valid());  // reaped by the watch
    EXPECT_FALSE(killed.valid());
    EXPECT_EQ(loop.watch_count(), 0u);
    Child none;
    EXPECT_FALSE(loop.watch_child(none, [](ExitStatus) {}));
}

TEST(EventLoopTest, PostFromACallbackRunsInALaterRound) {
    EventLoop loop = make_loop();
    std::vector<std::string> log;
    loop.post([&] {
        log.push_back("outer");
        loop.post([&] {
            log.push_back("inner");
            loop.stop();
        });
        log.push_back("outer done");
    });
    ASSERT_TRUE(loop.run());
    EXPECT_EQ(log, (std::vector<std::string>{"outer", "outer done", "inner"}));
}

TEST(EventLoopTest, StopBeforeRunReturnsAtOnce) {
    EventLoop loop = make_loop();
    loop.stop();
    ASSERT_TRUE(loop.run());
}

TEST(EventLoopTest, PidfdWatchFiresOnceWithoutReaping) {
    EventLoop loop = make_loop();
    Child child = Child::spawn([] { return 9; }).release_value();
    int fired = 0;
    ASSERT_TRUE(loop.watch_pidfd(child.pidfd(), [&] {
        ++fired;
        loop.stop();
    }));
    ASSERT_TRUE(loop.run());
    EXPECT_EQ(fired, 1);
    EXPECT_EQ(loop.watch_count(), 0u);  // the watch removed itself
    ASSERT_TRUE(loop.run_once(0));
    EXPECT_EQ(fired, 1);
    EXPECT_TRUE(child.valid());  // still ours to reap
    EXPECT_EQ(child.wait().value(), ExitStatus::exited(9));
}

TEST(EventLoopTest, FdCallbackCancelsAPendingTimer) {
    EventLoop loop = make_loop();
    Pipe pipe = make_pipe().release_value();
    bool timer_fired = false;
    EventLoop::WatchId timer = loop.add_timer(0ms, [&] { timer_fired = true; });
    EventLoop::WatchId fd_watch = 0;
    fd_watch = loop.add_fd(pipe.read.get(), EPOLLIN,
                           [&](uint32_t) {
                               loop.cancel_timer(timer);
                               loop.remove_fd(fd_watch);
                           })
                   .value();
    ASSERT_TRUE(write_all(pipe.write.get(), "x"));
    // Both may be ready in the same round; whichever order, the timer must
    // either have fired before the cancel or never.
    ASSERT_TRUE(loop.run_once(1000));
    bool fired_first = timer_fired;
    ASSERT_TRUE(loop.run_once(0));
    ASSERT_TRUE(loop.run_once(0));
    EXPECT_EQ(timer_fired, fired_first);
    EXPECT_EQ(loop.watch_count(), 0u);
}

TEST(EventLoopTest, NowAdvancesPerRound) {
    EventLoop loop = make_loop();
    auto before = loop.now();
    loop.add_timer(2ms, [] {});
    ASSERT_TRUE(loop.run_once(1000));
    EXPECT_GE(loop.now() - before, 2ms);
}

TEST(EventLoopTest, MovedLoopKeepsWorking) {
    EventLoop loop = make_loop();
    bool fired = false;
    loop.add_timer(0ms, [&] { fired = true; });
    EventLoop moved = std::move(loop);
    ASSERT_TRUE(moved.run_once(1000));
    EXPECT_TRUE(fired);
}

}  // namespace
}  // namespace locald::base
