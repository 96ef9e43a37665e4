#include "host/clock.h"

#include <memory>
#include <random>

namespace locald::host {
namespace {

class RealClock final : public Clock {
public:
    SteadyTime now() const override { return std::chrono::steady_clock::now(); }
    WallTime wall_now() const override { return std::chrono::system_clock::now(); }
};

}  // namespace

Clock& real_clock() {
    static RealClock clock;
    return clock;
}

RandomSource default_random_source() {
    // One generator per source; seeded from the kernel so two daemons (or two
    // services) restarting at the same instant spread out.
    auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
    return [engine]() { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
}

}  // namespace locald::host
