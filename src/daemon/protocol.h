// daemon/protocol.h — the CLI ⇄ daemon wire protocol (NDJSON over a Unix socket).
//
// Contract (docs/modules/daemon.md has the method list):
//   request  {"id":N,"method":"up","params":{…}}
//   event    {"id":N,"event":{…}}           zero or more, in order
//   result   {"id":N,"result":…}            exactly one of result / error ends N
//   error    {"id":N,"error":{"code":"not_found","message":"…"}}
// One JSON document per line, no size limit on a line, any number of requests
// per connection (answers to different ids may interleave). Error codes are
// the snake_case names of base::ErrorKind so the CLI maps them back to the
// same exit codes as a local error. The first request of a CLI is `hello`,
// which tells it the daemon's version and build id.
// Depends on base only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/json.h"

namespace locald::daemon {

// Bumped when a method changes incompatibly; a mismatch restarts the daemon.
inline constexpr int kProtocolVersion = 1;

struct Message {
    enum class Kind { Request, Event, Result, Error };
    Kind kind = Kind::Request;
    int64_t id = 0;
    std::string method;  // Request
    base::Json body;     // params / event / result
    std::optional<base::Error> error;
};

// Parses one line. InvalidArgument for anything that is not one of the four shapes.
base::Result<Message> parse_message(std::string_view line);

// One line each, with the trailing '\n'.
std::string encode_request(int64_t id, std::string_view method, const base::Json& params);
std::string encode_event(int64_t id, const base::Json& event);
std::string encode_result(int64_t id, const base::Json& result);
std::string encode_error(int64_t id, const base::Error& error);

std::string_view error_code(base::ErrorKind kind);
base::ErrorKind error_kind_from_code(std::string_view code);

// This binary's build id (daemon/internal/build_id.h) for `hello`.
const std::string& binary_build_id();

// Base64 (RFC 4648, with padding) for PTY bytes, which need not be UTF-8.
std::string base64_encode(std::string_view bytes);
base::Result<std::string> base64_decode(std::string_view text);

// Makes `text` valid UTF-8 (invalid bytes become U+FFFD) so any service output
// can travel as a JSON string.
std::string sanitize_utf8(std::string_view text);

}  // namespace locald::daemon
