#include "base/event_loop.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <queue>
#include <vector>

#include "base/log.h"

namespace locald::base {

namespace {

// epoll data for the loop's own fds; user watches start above them.
constexpr EventLoop::WatchId kWakeId = 1;
constexpr EventLoop::WatchId kTimerId = 2;
constexpr EventLoop::WatchId kSignalId = 3;
constexpr EventLoop::WatchId kFirstUserId = 16;

enum class Kind { Fd, Timer, Signal, Pidfd };

struct Watch {
    Kind kind;
    int fd = -1;
    EventLoop::FdCallback fd_callback;
    std::function<void()> callback;
    std::function<void(const signalfd_siginfo&)> signal_callback;
    int signo = 0;
    std::chrono::milliseconds interval{0};  // > 0 for repeating timers
    uint64_t sequence = 0;                  // of the timer's live heap entry
};

struct TimerEntry {
    EventLoop::Clock::time_point deadline;
    uint64_t sequence;  // insertion order: ties fire first-added first
    EventLoop::WatchId id;

    bool operator>(const TimerEntry& other) const {
        if (deadline != other.deadline) {
            return deadline > other.deadline;
        }
        return sequence > other.sequence;
    }
};

}  // namespace

struct EventLoop::Impl {
    UniqueFd epoll;
    UniqueFd wake;
    UniqueFd timer;
    UniqueFd signals;
    sigset_t signal_mask;
    // std::map: iteration in id order = the order watches were added.
    std::map<WatchId, std::shared_ptr<Watch>> watches;
    WatchId next_id = kFirstUserId;
    std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<>> timers;
    uint64_t next_sequence = 0;
    Clock::time_point armed_for = Clock::time_point::max();
    Clock::time_point now = Clock::now();
    std::atomic<bool> stop_requested{false};
    std::mutex posted_mutex;
    std::vector<std::function<void()>> posted;

    Result<void> epoll_add(int fd, uint32_t events, WatchId id) {
        struct epoll_event event = {};
        event.events = events;
        event.data.u64 = id;
        if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
            return errno_error("watching fd {}", fd);
        }
        return ok();
    }

    // Drops timer heap entries whose watch is gone or was re-scheduled.
    void prune_timers() {
        while (!timers.empty()) {
            const TimerEntry& top = timers.top();
            auto it = watches.find(top.id);
            if (it != watches.end() && it->second->kind == Kind::Timer &&
                it->second->sequence == top.sequence) {
                return;
            }
            timers.pop();
        }
    }

    Result<void> arm_timer() {
        prune_timers();
        Clock::time_point next = timers.empty() ? Clock::time_point::max() : timers.top().deadline;
        if (next == armed_for) {
            return ok();
        }
        struct itimerspec spec = {};
        if (next != Clock::time_point::max()) {
            auto since_epoch = next.time_since_epoch();
            auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
            auto nanos =
                std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds);
            spec.it_value.tv_sec = seconds.count();
            spec.it_value.tv_nsec = nanos.count();
            if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) {
                spec.it_value.tv_nsec = 1;  // zero would disarm
            }
        }
        // steady_clock is CLOCK_MONOTONIC, the timerfd's clock.
        if (::timerfd_settime(timer.get(), TFD_TIMER_ABSTIME, &spec, nullptr) != 0) {
            return errno_error("arming the event loop timer");
        }
        armed_for = next;
        return ok();
    }

    WatchId schedule(std::chrono::milliseconds delay, std::chrono::milliseconds interval,
                     std::function<void()> callback) {
        WatchId id = next_id++;
        auto watch = std::make_shared<Watch>();
        watch->kind = Kind::Timer;
        watch->callback = std::move(callback);
        watch->interval = interval;
        watch->sequence = next_sequence++;
        timers.push(TimerEntry{Clock::now() + std::max(delay, std::chrono::milliseconds(0)),
                               watch->sequence, id});
        watches.emplace(id, std::move(watch));
        if (auto armed = arm_timer(); !armed) {
            LOG_ERROR("{}", armed.error().to_string());
        }
        return id;
    }

    void run_posted() {
        uint64_t count;
        ssize_t ignored = ::read(wake.get(), &count, sizeof count);
        (void)ignored;
        std::vector<std::function<void()>> batch;
        {
            std::lock_guard lock(posted_mutex);
            batch.swap(posted);
        }
        for (auto& fn : batch) {
            fn();
        }
    }

    void run_timers() {
        uint64_t expirations;
        ssize_t ignored = ::read(timer.get(), &expirations, sizeof expirations);
        (void)ignored;
        armed_for = Clock::time_point::max();  // it fired; re-arm below
        // Collect what is due first, so a callback adding a 0 ms timer does
        // not starve the rest of the loop.
        std::vector<std::pair<WatchId, uint64_t>> due;
        while (true) {
            prune_timers();
            if (timers.empty() || timers.top().deadline > now) {
                break;
            }
            TimerEntry entry = timers.top();
            timers.pop();
            due.emplace_back(entry.id, entry.sequence);
            auto& watch = watches.at(entry.id);
            if (watch->interval.count() > 0) {
                // Next period from the previous deadline (no drift), but
                // never in the past (no burst after a stall).
                auto next = std::max(entry.deadline + watch->interval, now);
                watch->sequence = next_sequence++;
                timers.push(TimerEntry{next, watch->sequence, entry.id});
            }
        }
        for (auto [id, sequence] : due) {
            auto it = watches.find(id);
            if (it == watches.end()) {
                continue;  // removed by an earlier callback of this round
            }
            std::shared_ptr<Watch> watch = it->second;
            if (watch->interval.count() == 0) {
                watches.erase(it);  // one-shot: gone before it runs
            }
            watch->callback();
        }
    }

    void run_signals() {
        while (true) {
            signalfd_siginfo info;
            ssize_t n = ::read(signals.get(), &info, sizeof info);
            if (n != sizeof info) {
                return;  // EAGAIN: drained
            }
            std::vector<std::shared_ptr<Watch>> handlers;
            for (auto& [id, watch] : watches) {
                if (watch->kind == Kind::Signal &&
                    watch->signo == static_cast<int>(info.ssi_signo)) {
                    handlers.push_back(watch);
                }
            }
            for (auto& handler : handlers) {
                // Skip handlers removed by an earlier handler of this signal.
                bool live = false;
                for (auto& [id, watch] : watches) {
                    if (watch == handler) {
                        live = true;
                        break;
                    }
                }
                if (live) {
                    handler->signal_callback(info);
                }
            }
        }
    }

    void remove(WatchId id) {
        auto it = watches.find(id);
        if (it == watches.end()) {
            return;
        }
        if (it->second->kind == Kind::Fd || it->second->kind == Kind::Pidfd) {
            // EBADF/ENOENT: the fd was closed first; epoll already forgot it.
            ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, it->second->fd, nullptr);
        }
        watches.erase(it);
    }

    void dispatch(WatchId id, uint32_t events) {
        switch (id) {
            case kWakeId:
                run_posted();
                return;
            case kTimerId:
                run_timers();
                return;
            case kSignalId:
                run_signals();
                return;
            default:
                break;
        }
        auto it = watches.find(id);
        if (it == watches.end()) {
            return;  // removed earlier in this round
        }
        std::shared_ptr<Watch> watch = it->second;
        if (watch->kind == Kind::Fd) {
            watch->fd_callback(events);
        } else if (watch->kind == Kind::Pidfd) {
            // A pidfd stays readable forever once the process exited.
            remove(id);
            watch->callback();
        }
    }
};

EventLoop::EventLoop(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
EventLoop::EventLoop(EventLoop&&) noexcept = default;
EventLoop& EventLoop::operator=(EventLoop&&) noexcept = default;
EventLoop::~EventLoop() = default;

Result<EventLoop> EventLoop::create() {
    auto impl = std::make_unique<Impl>();
    sigemptyset(&impl->signal_mask);
    int epoll = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll < 0) {
        return errno_error("creating an epoll instance");
    }
    impl->epoll.reset(epoll);
    int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake < 0) {
        return errno_error("creating an eventfd");
    }
    impl->wake.reset(wake);
    int timer = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (timer < 0) {
        return errno_error("creating a timerfd");
    }
    impl->timer.reset(timer);
    TRY(impl->epoll_add(wake, EPOLLIN, kWakeId));
    TRY(impl->epoll_add(timer, EPOLLIN, kTimerId));
    return EventLoop(std::move(impl));
}

Result<EventLoop::WatchId> EventLoop::add_fd(int fd, uint32_t events, FdCallback callback) {
    WatchId id = m_impl->next_id++;
    TRY(m_impl->epoll_add(fd, events, id));
    auto watch = std::make_shared<Watch>();
    watch->kind = Kind::Fd;
    watch->fd = fd;
    watch->fd_callback = std::move(callback);
    m_impl->watches.emplace(id, std::move(watch));
    return id;
}

Result<void> EventLoop::modify_fd(WatchId id, uint32_t events) {
    auto it = m_impl->watches.find(id);
    if (it == m_impl->watches.end() || it->second->kind != Kind::Fd) {
        return not_found("modifying fd watch {}: no such watch", id);
    }
    struct epoll_event event = {};
    event.events = events;
    event.data.u64 = id;
    if (::epoll_ctl(m_impl->epoll.get(), EPOLL_CTL_MOD, it->second->fd, &event) != 0) {
        return errno_error("changing the events watched on fd {}", it->second->fd);
    }
    return ok();
}

void EventLoop::remove_fd(WatchId id) {
    m_impl->remove(id);
}

EventLoop::WatchId EventLoop::add_timer(std::chrono::milliseconds delay,
                                        std::function<void()> callback) {
    return m_impl->schedule(delay, std::chrono::milliseconds(0), std::move(callback));
}

EventLoop::WatchId EventLoop::add_repeating_timer(std::chrono::milliseconds interval,
                                                  std::function<void()> callback) {
    interval = std::max(interval, std::chrono::milliseconds(1));
    return m_impl->schedule(interval, interval, std::move(callback));
}

void EventLoop::cancel_timer(WatchId id) {
    m_impl->remove(id);
}

Result<EventLoop::WatchId> EventLoop::add_signal(
    int signo, std::function<void(const signalfd_siginfo&)> callback) {
    if (signo == SIGKILL || signo == SIGSTOP) {
        return invalid_argument("signal {} cannot be caught", signo);
    }
    sigset_t one;
    sigemptyset(&one);
    if (sigaddset(&one, signo) != 0) {
        return errno_error("watching signal {}", signo);
    }
    int err = ::pthread_sigmask(SIG_BLOCK, &one, nullptr);
    if (err != 0) {
        return Error::from_errno(err, fmt::format("blocking signal {}", signo));
    }
    sigaddset(&m_impl->signal_mask, signo);
    int fd = ::signalfd(m_impl->signals.valid() ? m_impl->signals.get() : -1, &m_impl->signal_mask,
                        SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) {
        return errno_error("creating a signalfd for signal {}", signo);
    }
    if (!m_impl->signals.valid()) {
        m_impl->signals.reset(fd);
        TRY(m_impl->epoll_add(fd, EPOLLIN, kSignalId));
    }
    WatchId id = m_impl->next_id++;
    auto watch = std::make_shared<Watch>();
    watch->kind = Kind::Signal;
    watch->signo = signo;
    watch->signal_callback = std::move(callback);
    m_impl->watches.emplace(id, std::move(watch));
    return id;
}

void EventLoop::remove_signal(WatchId id) {
    m_impl->remove(id);
}

Result<EventLoop::WatchId> EventLoop::watch_pidfd(int pidfd, std::function<void()> callback) {
    WatchId id = m_impl->next_id++;
    TRY(m_impl->epoll_add(pidfd, EPOLLIN, id));
    auto watch = std::make_shared<Watch>();
    watch->kind = Kind::Pidfd;
    watch->fd = pidfd;
    watch->callback = std::move(callback);
    m_impl->watches.emplace(id, std::move(watch));
    return id;
}

Result<EventLoop::WatchId> EventLoop::watch_child(Child& child,
                                                  std::function<void(ExitStatus)> callback) {
    if (!child.valid()) {
        return failed_precondition("watching a child that is not running");
    }
    Child* target = &child;
    return watch_pidfd(child.pidfd(), [target, callback = std::move(callback)] {
        auto status = target->try_wait();
        if (!status) {
            LOG_ERROR("reaping a child: {}", status.error().to_string());
            return;
        }
        if (status->has_value()) {
            callback(**status);
        }
    });
}

void EventLoop::remove(WatchId id) {
    m_impl->remove(id);
}

void EventLoop::post(std::function<void()> fn) {
    {
        std::lock_guard lock(m_impl->posted_mutex);
        m_impl->posted.push_back(std::move(fn));
    }
    uint64_t one = 1;
    ssize_t ignored = ::write(m_impl->wake.get(), &one, sizeof one);
    (void)ignored;
}

Result<void> EventLoop::run() {
    while (!m_impl->stop_requested.exchange(false)) {
        TRY(run_once(-1));
    }
    return ok();
}

Result<void> EventLoop::run_once(int timeout_ms) {
    TRY(m_impl->arm_timer());
    struct epoll_event events[64];
    int count = ::epoll_wait(m_impl->epoll.get(), events, 64, timeout_ms);
    if (count < 0) {
        if (errno == EINTR) {
            return ok();
        }
        return errno_error("waiting for events");
    }
    m_impl->now = Clock::now();
    for (int i = 0; i < count; ++i) {
        m_impl->dispatch(events[i].data.u64, events[i].events);
    }
    return m_impl->arm_timer();
}

void EventLoop::stop() {
    m_impl->stop_requested.store(true);
    uint64_t one = 1;
    ssize_t ignored = ::write(m_impl->wake.get(), &one, sizeof one);
    (void)ignored;
}

EventLoop::Clock::time_point EventLoop::now() const {
    return m_impl->now;
}

size_t EventLoop::watch_count() const {
    return m_impl->watches.size();
}

}  // namespace locald::base
