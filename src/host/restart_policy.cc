#include "host/restart_policy.h"

#include <algorithm>
#include <cmath>

namespace locald::host {

std::string_view to_string(RestartMode mode) {
    switch (mode) {
        case RestartMode::No:
            return "no";
        case RestartMode::OnFailure:
            return "on-failure";
        case RestartMode::Always:
            return "always";
    }
    return "?";
}

Millis backoff_delay(const RestartPolicy& policy, int consecutive, double random) {
    const double initial = static_cast<double>(policy.backoff_initial.count());
    const double max = std::max(initial, static_cast<double>(policy.backoff_max.count()));
    // 2^n overflows double only past n ~ 1000; cap the exponent well before.
    const double base = std::min(max, initial * std::exp2(std::min(consecutive, 62)));
    const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
    const double r = std::clamp(random, 0.0, 1.0);
    const double delay = std::max(initial, base * (1.0 - jitter * r));
    return Millis(static_cast<Millis::rep>(std::llround(delay)));
}

bool should_restart(RestartMode mode, bool failed) {
    switch (mode) {
        case RestartMode::No:
            return false;
        case RestartMode::OnFailure:
            return failed;
        case RestartMode::Always:
            return true;
    }
    return false;
}

}  // namespace locald::host
