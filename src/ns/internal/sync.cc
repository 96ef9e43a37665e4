// ns/internal/sync.cc — the child → parent error channel.
//
// A child-side failure travels as one frame {kind, errno, step length,
// message length, step, message} over a CLOEXEC pipe, so the parent can say
// *which* step failed on *which* path with *which* errno instead of a bare
// exit code. The pipe closes by itself at the payload's successful execve.
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "ns/internal/context.h"

namespace locald::ns::internal {

namespace {

struct FrameHeader {
    int32_t kind;
    int32_t err;
    uint32_t step_length;
    uint32_t message_length;
};

constexpr size_t kMaxMessage = 16384;

}  // namespace

void send_error(int fd, std::string_view step, const base::Error& error) {
    std::string_view message = error.message();
    FrameHeader header{static_cast<int32_t>(error.kind()), error.errno_value(),
                       static_cast<uint32_t>(std::min<size_t>(step.size(), 256)),
                       static_cast<uint32_t>(std::min(message.size(), kMaxMessage))};
    std::string frame(reinterpret_cast<const char*>(&header), sizeof header);
    frame.append(step.substr(0, header.step_length));
    frame.append(message.substr(0, header.message_length));
    // One write: frames are far below PIPE_BUF × 16 and the reader drains to EOF.
    std::string_view rest = frame;
    while (!rest.empty()) {
        ssize_t n = ::write(fd, rest.data(), rest.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            // The parent is gone; stderr is the last resort.
            std::string line =
                fmt::format("locald: container setup failed at {}: {}\n", step, error.to_string());
            (void)!::write(STDERR_FILENO, line.data(), line.size());
            return;
        }
        rest.remove_prefix(static_cast<size_t>(n));
    }
}

base::Result<void> receive_error(int fd) {
    std::string data;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (data.size() < kMaxMessage + 512) {
            data.append(buf, static_cast<size_t>(n));
        }
    }
    if (data.empty()) {
        return base::ok();
    }
    FrameHeader header;
    if (data.size() < sizeof header) {
        return base::internal_error("truncated error report from the container");
    }
    std::memcpy(&header, data.data(), sizeof header);
    if (data.size() < sizeof header + header.step_length + header.message_length) {
        return base::internal_error("truncated error report from the container");
    }
    std::string step = data.substr(sizeof header, header.step_length);
    std::string message = data.substr(sizeof header + header.step_length, header.message_length);
    auto kind = static_cast<base::ErrorKind>(
        std::clamp<int32_t>(header.kind, 0, static_cast<int32_t>(base::ErrorKind::Internal)));
    return base::Error(kind, fmt::format("container setup step `{}`: {}", step, message),
                       header.err);
}

void run_steps(ChildContext& ctx, const Step* steps, size_t count) {
    for (size_t i = 0; i < count; ++i) {
        auto result = steps[i].run(ctx);
        if (!result) {
            send_error(ctx.error_fd, steps[i].name, result.error());
            ::_exit(125);
        }
    }
}

}  // namespace locald::ns::internal
