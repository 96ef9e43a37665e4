// config/values.h — parsers for the scalar value syntaxes of locald.toml.
//
// Each returns InvalidArgument with a message that says what was expected; the
// caller prefixes `file:line:col`. Pure functions, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"
#include "config/spec.h"

namespace locald::config {

// "500ms", "10s", "2m", "1h", and sums like "1m30s". A bare number, a
// negative value, a fraction or an unknown unit is an error.
base::Result<Duration> parse_duration(std::string_view text);
// "500ms", "10s", "1m30s": the shortest exact spelling of `duration`.
std::string format_duration(Duration duration);

// "SIGTERM", "TERM", "sigterm", "SIGRTMIN+3". Numbers are not names.
base::Result<Signal> parse_signal(std::string_view text);

// "512M", "1G", "1.5G", "64MiB", "2048" (bytes), "100k". K/M/G/T are 1024-based.
base::Result<std::uint64_t> parse_memory(std::string_view text);

// Service and Procfile process names: [A-Za-z0-9_-]+.
bool is_valid_service_name(std::string_view name);
// Environment keys: [A-Za-z_][A-Za-z0-9_.-]*.
bool is_valid_env_key(std::string_view key);

}  // namespace locald::config
