// Log throughput of the host supervisor's output path.
//
// A flooding producer (tests' host_helper `flood BYTES`, 100-byte lines)
// runs under a real PTY; this program drains the master like the
// Supervisor does and measures, per mode, wall time from spawn to EOF and
// the producer's own view of how long its writes took (if the consumer is
// slower, the producer blocks on the PTY — that is what we must avoid):
//   raw    read and discard (the PTY's own ceiling)
//   ring   LogSink with the 10,000-line ring, no file
//   file   ring + rotated file (10 MiB x 3) in $BENCH_DIR (default /tmp)
//   sink-ring, sink-file  the LogSink alone, fed 4 KiB chunks from memory
//   super  the whole Supervisor on a base::EventLoop (ring + file + probe-free)
// Usage: host_log_throughput HELPER BYTES MODE [RUNS]
// Prints one line per run and the median MB/s.
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "host/log_sink.h"
#include "host/pty.h"
#include "host/supervisor.h"

using namespace locald;
using namespace locald::host;

namespace {

double run_pty(const std::string& helper, long long bytes, const std::string& mode,
               const std::string& dir) {
    std::unique_ptr<LogSink> sink;
    if (mode != "raw") {
        LogSinkOptions options;
        if (mode == "file") {
            options.file_path = dir + "/bench.log";
        }
        sink = LogSink::create(options, real_clock()).release_value();
    }
    ExecPlan plan;
    plan.argv = {helper, "flood", std::to_string(bytes)};
    auto start = std::chrono::steady_clock::now();
    auto child = spawn_in_pty(plan).release_value();
    std::vector<char> buffer(64 * 1024);
    long long total = 0;
    long long reads = 0;
    for (;;) {
        pollfd p{child.master.get(), POLLIN, 0};
        ::poll(&p, 1, 1000);
        ssize_t n;
        while ((n = ::read(child.master.get(), buffer.data(), buffer.size())) > 0) {
            total += n;
            ++reads;
            if (sink) {
                sink->write_output(std::string_view(buffer.data(), static_cast<size_t>(n)));
            }
        }
        if (sink) {
            sink->flush();
        }
        if (n < 0 && errno == EAGAIN) {
            continue;
        }
        break;
    }
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    while (true) {
        auto r = try_reap(child.pid, child.pidfd.get());
        if (!r || r.value()) {
            break;
        }
        ::usleep(1000);
    }
    if (sink) {
        sink->flush_partial();
        auto tail = sink->tail(1);
        std::fprintf(stderr, "  last line: %.40s\n", tail.empty() ? "" : tail[0].text.c_str());
    }
    std::fprintf(stderr, "  read %lld bytes in %.3fs, %lld reads (%.0f bytes/read)\n", total,
                 elapsed, reads, reads ? static_cast<double>(total) / reads : 0.0);
    return static_cast<double>(total) / elapsed / 1e6;
}

// The LogSink alone, fed 4 KiB chunks (what a PTY read returns) from memory:
// the cost of our code without the kernel's PTY in the way.
double run_sink_only(long long bytes, bool with_file, const std::string& dir) {
    LogSinkOptions options;
    if (with_file) {
        options.file_path = dir + "/sink-only.log";
    }
    auto sink = LogSink::create(options, real_clock()).release_value();
    std::string line(99, 'x');
    line += '\n';
    std::string block;
    while (block.size() < 64 * 1024) {
        block += line;
    }
    auto start = std::chrono::steady_clock::now();
    long long done = 0;
    size_t offset = 0;
    while (done < bytes) {
        size_t n = std::min<size_t>(4096, block.size() - offset);
        sink->write_output(std::string_view(block).substr(offset, n));
        offset = (offset + n) % block.size();
        done += static_cast<long long>(n);
        if (offset % (64 * 1024) == 0) {
            sink->flush();
        }
    }
    sink->flush_partial();
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return static_cast<double>(done) / elapsed / 1e6;
}

double run_supervisor(const std::string& helper, long long bytes, const std::string& dir) {
    auto loop = base::EventLoop::create().release_value();
    SupervisorOptions options;
    options.name = "bench:flood";
    options.plan.argv = {helper, "flood", std::to_string(bytes)};
    options.restart.mode = RestartMode::No;
    options.logs.file_path = dir + "/super.log";
    auto supervisor = Supervisor::create(loop, options).release_value();
    auto start = std::chrono::steady_clock::now();
    supervisor->start();
    while (supervisor->status().state != ServiceState::Exited &&
           supervisor->status().state != ServiceState::Failed) {
        (void)loop.run_once(100);
    }
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    auto tail = supervisor->logs().tail(3);
    std::fprintf(stderr, "  last lines: %.30s | %.30s\n", tail[0].text.c_str(),
                 tail[1].text.c_str());
    return static_cast<double>(supervisor->logs().bytes_written()) / elapsed / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr,
                     "usage: %s HELPER BYTES raw|ring|file|sink-ring|sink-file|super [RUNS]\n",
                     argv[0]);
        return 2;
    }
    std::string helper = argv[1];
    long long bytes = std::atoll(argv[2]);
    std::string mode = argv[3];
    int runs = argc > 4 ? std::atoi(argv[4]) : 5;
    const char* env_dir = std::getenv("BENCH_DIR");
    std::string dir = env_dir ? env_dir : "/tmp";
    std::vector<double> results;
    for (int i = 0; i < runs; ++i) {
        double mbps = mode == "super"       ? run_supervisor(helper, bytes, dir)
                      : mode == "sink-ring" ? run_sink_only(bytes, false, dir)
                      : mode == "sink-file" ? run_sink_only(bytes, true, dir)
                                            : run_pty(helper, bytes, mode, dir);
        std::printf("run %d: %.1f MB/s\n", i + 1, mbps);
        results.push_back(mbps);
    }
    std::sort(results.begin(), results.end());
    std::printf("median %s: %.1f MB/s over %d runs of %lld bytes\n", mode.c_str(),
                results[results.size() / 2], runs, bytes);
    return 0;
}
