// host/clock.h — time as the supervisor sees it, injectable for tests.
//
// Contract: every decision of the restart/probe state machine reads time from a
// Clock, never from std::chrono directly, so tests drive it exactly (no sleeps).
// `now()` is monotonic and is what deadlines use; `wall_now()` is only for
// human-facing timestamps (started_at, ready_at, log lines).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace locald::host {

using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;
using Millis = std::chrono::milliseconds;

class Clock {
public:
    virtual ~Clock() = default;
    virtual SteadyTime now() const = 0;
    virtual WallTime wall_now() const = 0;
};

// The real clocks. A process-wide singleton; thread-safe.
Clock& real_clock();

// A clock that moves only when told to. Starts at an arbitrary fixed point.
class ManualClock final : public Clock {
public:
    SteadyTime now() const override { return m_now; }
    WallTime wall_now() const override { return m_wall; }
    void advance(Millis by) {
        m_now += by;
        m_wall += by;
    }

private:
    SteadyTime m_now{std::chrono::hours(1000)};
    WallTime m_wall{std::chrono::seconds(1'700'000'000)};
};

// Source of jitter in [0, 1). Injected so backoff is exact in tests.
using RandomSource = std::function<double()>;
RandomSource default_random_source();

}  // namespace locald::host
