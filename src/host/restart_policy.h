// host/restart_policy.h — when a service that ended is started again, and after
// how long.
//
// Contract: plain data plus pure functions; time and randomness are inputs.
// Backoff for the n-th consecutive restart (n = 0, 1, …) is
//   base(n)  = min(max, initial * 2^n)
//   delay(n) = max(initial, base(n) * (1 - jitter * r))   with r in [0, 1)
// so the delay is always within [initial, max] and the jitter only shortens it
// (spreads a crash-looping stack without ever exceeding `max`).
// A run that lasted at least `min_uptime` resets the consecutive count (and
// so the backoff). `max_restarts` consecutive restarts without reaching
// min_uptime, then the service is failed; < 0 means unlimited.
#pragma once

#include <chrono>
#include <string_view>

#include "host/clock.h"

namespace locald::host {

enum class RestartMode { No, OnFailure, Always };

std::string_view to_string(RestartMode mode);

struct RestartPolicy {
    RestartMode mode = RestartMode::OnFailure;
    Millis backoff_initial{500};
    Millis backoff_max{30'000};
    double jitter = 0.2;  // fraction in [0, 1]
    Millis min_uptime{5'000};
    int max_restarts = 10;  // < 0: unlimited
};

// Delay before the restart that follows `consecutive` earlier consecutive
// restarts; `random` in [0, 1).
Millis backoff_delay(const RestartPolicy& policy, int consecutive, double random);

// Whether a run that ended this way should be restarted (ignoring the limit).
// `failed` = non-zero exit, killed by a signal, or a failed probe.
bool should_restart(RestartMode mode, bool failed);

}  // namespace locald::host
