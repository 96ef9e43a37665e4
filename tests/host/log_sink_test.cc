#include "host/log_sink.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "test_util.h"

namespace locald::host {
namespace {

std::vector<std::string> texts(const std::vector<LogRecord>& records) {
    std::vector<std::string> out;
    for (const auto& r : records) {
        out.push_back(r.text);
    }
    return out;
}

std::unique_ptr<LogSink> make_sink(LogSinkOptions options, const Clock& clock) {
    auto sink = LogSink::create(std::move(options), clock);
    EXPECT_TRUE(sink.has_value());
    return sink.release_value();
}

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

TEST(LogSink, SplitsLinesAcrossChunksAndStripsCr) {
    ManualClock clock;
    auto sink = make_sink({}, clock);
    sink->write_output("one\r\ntw");
    sink->write_output("o\nthr");
    EXPECT_EQ(texts(sink->tail(0)), (std::vector<std::string>{"one", "two"}));
    sink->write_output("ee");
    sink->flush_partial();  // PTY EOF: the unterminated line is kept
    EXPECT_EQ(texts(sink->tail(0)), (std::vector<std::string>{"one", "two", "three"}));
    EXPECT_EQ(sink->last_seq(), 3u);
    EXPECT_EQ(sink->bytes_written(), 14u);
}

TEST(LogSink, RingKeepsTheLastLines) {
    ManualClock clock;
    LogSinkOptions options;
    options.ring_lines = 3;
    auto sink = make_sink(options, clock);
    for (int i = 0; i < 10; ++i) {
        sink->write_output("l" + std::to_string(i) + "\n");
    }
    EXPECT_EQ(texts(sink->tail(0)), (std::vector<std::string>{"l7", "l8", "l9"}));
    EXPECT_EQ(texts(sink->tail(2)), (std::vector<std::string>{"l8", "l9"}));
    EXPECT_EQ(texts(sink->since(8)), (std::vector<std::string>{"l8", "l9"}));
    EXPECT_EQ(texts(sink->since(100)), std::vector<std::string>{});
}

TEST(LogSink, DefaultRingIsTenThousandLines) {
    EXPECT_EQ(LogSinkOptions{}.ring_lines, 10'000u);
}

TEST(LogSink, OverlongLinesAreCut) {
    ManualClock clock;
    LogSinkOptions options;
    options.max_line_bytes = 4;
    auto sink = make_sink(options, clock);
    sink->write_output("abcdefghij\nxy");
    sink->write_output("zuvw");  // partial grows to the cap
    EXPECT_EQ(texts(sink->tail(0)), (std::vector<std::string>{"abcd", "efgh", "ij", "xyzu"}));
    sink->flush_partial();
    EXPECT_EQ(sink->tail(1)[0].text, "vw");
}

TEST(LogSink, SystemRecordsAreMarked) {
    ManualClock clock;
    auto sink = make_sink({}, clock);
    sink->write_output("a\n");
    sink->write_system("exited with code 1");
    auto records = sink->tail(0);
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[0].stream, LogStream::Output);
    EXPECT_EQ(records[1].stream, LogStream::System);
    EXPECT_EQ(records[1].time, clock.wall_now());
}

TEST(LogSink, SlowSubscriberGetsAGapAndNeverBlocks) {
    ManualClock clock;
    auto sink = make_sink({}, clock);
    int wakes = 0;
    auto sub = sink->subscribe(3, [&] { ++wakes; });
    for (int i = 0; i < 10; ++i) {
        sink->write_output("l" + std::to_string(i) + "\n");
    }
    EXPECT_EQ(wakes, 1);  // once, when the queue became non-empty
    std::vector<LogRecord> got;
    EXPECT_EQ(sub->drain(got), 4u);
    EXPECT_EQ(texts(got), (std::vector<std::string>{"l0", "l1", "l2",
                                                    "[locald: 7 lines dropped: reader too slow]"}));
    EXPECT_EQ(got[3].stream, LogStream::Gap);
    EXPECT_EQ(got[3].dropped, 7u);
    EXPECT_EQ(sub->total_dropped(), 7u);
    // The ring has everything regardless.
    EXPECT_EQ(sink->tail(0).size(), 10u);
    got.clear();
    sink->write_output("after\n");
    EXPECT_EQ(sub->drain(got), 1u);
    EXPECT_EQ(got[0].text, "after");
    EXPECT_EQ(wakes, 2);
}

TEST(LogSink, RawSubscriberSeesBytesUnchanged) {
    ManualClock clock;
    auto sink = make_sink({}, clock);
    auto raw = sink->subscribe_raw(8, nullptr);
    sink->write_output("\x1b[31mred");  // 8 bytes: fits
    sink->write_output("more");         // would exceed: dropped
    std::string bytes;
    EXPECT_EQ(raw->drain_raw(bytes), 4u);
    EXPECT_EQ(bytes, "\x1b[31mred");
}

TEST(LogSink, DroppingASubscriptionUnsubscribes) {
    ManualClock clock;
    auto sink = make_sink({}, clock);
    { auto sub = sink->subscribe(10, nullptr); }
    sink->write_output("x\n");  // must not touch the freed subscription
    auto sub = sink->subscribe(10, nullptr);
    sink.reset();  // the sink goes first: the subscription is inert
    std::vector<LogRecord> got;
    EXPECT_EQ(sub->drain(got), 0u);
}

TEST(LogSink, FileIsPrivateTimestampedAndRotated) {
    ManualClock clock;
    std::string dir = testing::make_temp_dir();
    LogSinkOptions options;
    options.file_path = dir + "/logs/proj/web.log";  // parents are created 0700
    options.file_max_bytes = 1000;
    options.file_keep = 2;
    options.file_buffer_bytes = 100;
    auto sink = make_sink(options, clock);
    struct stat st {};
    ASSERT_EQ(::stat(options.file_path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(::stat((dir + "/logs/proj").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);

    sink->write_output("first line\n");
    sink->flush();
    std::string content = slurp(options.file_path);
    EXPECT_EQ(content, "2023-11-14T22:13:20.000Z out first line\n");

    for (int i = 0; i < 200; ++i) {
        sink->write_output(fmt::format("line {:04}\n", i));
    }
    sink->flush();
    // Live + 2 rotated files, none much over the limit, no third.
    for (std::string path :
         {options.file_path, options.file_path + ".1", options.file_path + ".2"}) {
        ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
        EXPECT_LE(st.st_size, 1000 + 100) << path;
    }
    EXPECT_NE(::stat((options.file_path + ".3").c_str(), &st), 0);
    // The newest line is in the live file (or just rotated into .1).
    std::string live = slurp(options.file_path) + slurp(options.file_path + ".1");
    EXPECT_NE(live.find("out line 0199\n"), std::string::npos);
}

TEST(LogSink, LineHookSeesEveryRecord) {
    ManualClock clock;
    auto sink = make_sink({}, clock);
    std::vector<std::string> seen;
    sink->set_line_hook([&](const LogRecord& r) { seen.push_back(r.text); });
    sink->write_output("a\nb\n");
    sink->write_system("c");
    EXPECT_EQ(seen, (std::vector<std::string>{"a", "b", "c"}));
}

}  // namespace
}  // namespace locald::host
