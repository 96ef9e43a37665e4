// base/event_loop.h — a single-threaded epoll loop.
//
// Contract: one thread runs run(); every callback runs on that thread, one
// at a time, and may add or remove any watch (including its own) — a watch
// removed during dispatch never fires again, not even for events already
// returned by the same epoll_wait. Watches are identified by a WatchId
// (never reused); remove(id) works for every kind, and the kind-specific
// names are aliases. Only post() and stop() may be called from other
// threads.
//
//  - fds: add_fd(fd, EPOLLIN|EPOLLOUT…, cb(events)). Level-triggered. The
//    loop does not own the fd: remove the watch before closing it.
//  - timers: one timerfd armed for the earliest deadline of a min-heap.
//    Deadlines are on the monotonic clock at millisecond resolution; timers
//    due at the same instant fire in the order they were added.
//  - signals: add_signal(signo, cb) blocks signo in the calling thread
//    (call it before starting other threads so they inherit the mask) and
//    reads it from one signalfd. Signals stay blocked after removal (an
//    unblocked pending SIGTERM would kill the process). Children spawned
//    with base/subprocess.h get a clean mask.
//  - child exits: watch_pidfd(pidfd, cb) fires once when the process has
//    exited (then the watch is gone); watch_child(child, cb(status)) also
//    reaps it with child.try_wait() — the Child must stay at the same
//    address until the callback ran or the watch was removed.
//  - post(fn): runs fn on the loop thread soon (eventfd wake-up), in order.
#pragma once

#include <sys/epoll.h>
#include <sys/signalfd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "base/child.h"
#include "base/error.h"

namespace locald::base {

class EventLoop {
public:
    using WatchId = uint64_t;
    using Clock = std::chrono::steady_clock;
    using FdCallback = std::function<void(uint32_t events)>;

    static Result<EventLoop> create();

    EventLoop(EventLoop&&) noexcept;
    EventLoop& operator=(EventLoop&&) noexcept;
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;
    ~EventLoop();

    // Watches `fd` for `events` (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLPRI);
    // the callback gets the ready set, which may include EPOLLHUP/EPOLLERR.
    Result<WatchId> add_fd(int fd, uint32_t events, FdCallback callback);
    Result<void> modify_fd(WatchId id, uint32_t events);
    // Same as remove(id).
    void remove_fd(WatchId id);

    // One-shot timer after `delay` (≥ 0).
    WatchId add_timer(std::chrono::milliseconds delay, std::function<void()> callback);
    // Repeats every `interval` (> 0) until removed; first run after `interval`.
    WatchId add_repeating_timer(std::chrono::milliseconds interval, std::function<void()> callback);
    // Same as remove(id).
    void cancel_timer(WatchId id);

    // Blocks `signo` in this thread and calls back for each delivery.
    // Several callbacks per signal are allowed.
    Result<WatchId> add_signal(int signo, std::function<void(const signalfd_siginfo&)> callback);
    // Same as remove(id).
    void remove_signal(WatchId id);

    // Fires once when the process behind `pidfd` exits; does not reap.
    Result<WatchId> watch_pidfd(int pidfd, std::function<void()> callback);
    // Fires once with the exit status; reaps `child` (which becomes empty).
    Result<WatchId> watch_child(Child& child, std::function<void(ExitStatus)> callback);

    // Removes any watch; unknown or already-removed ids are ignored.
    void remove(WatchId id);

    // Thread-safe: queue `fn` to run on the loop thread.
    void post(std::function<void()> fn);

    // Dispatches until stop(). Errors only for epoll/timerfd failures.
    Result<void> run();
    // One epoll_wait (timeout_ms -1 = block) plus dispatch; for tests and
    // callers driving the loop themselves.
    Result<void> run_once(int timeout_ms = -1);
    // Thread-safe: makes run() return after the current dispatch round.
    void stop();

    // The time at the start of the current dispatch round (cached, so all
    // callbacks of one round agree).
    Clock::time_point now() const;

    // Number of live watches of all kinds (tests, leak checks).
    size_t watch_count() const;

private:
    struct Impl;
    explicit EventLoop(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

}  // namespace locald::base
