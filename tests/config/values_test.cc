// Durations, signals, memory sizes and names in locald.toml.
#include "config/values.h"

#include <signal.h>

#include <gtest/gtest.h>

namespace locald::config {
namespace {

TEST(Duration, ParsesUnitsAndSums) {
    EXPECT_EQ(parse_duration("500ms").value(), Duration(500));
    EXPECT_EQ(parse_duration("10s").value(), Duration(10000));
    EXPECT_EQ(parse_duration("2m").value(), Duration(120000));
    EXPECT_EQ(parse_duration("1h").value(), Duration(3600000));
    EXPECT_EQ(parse_duration("1m30s").value(), Duration(90000));
    EXPECT_EQ(parse_duration("1h2m3s4ms").value(), Duration(3723004));
    EXPECT_EQ(parse_duration("0s").value(), Duration(0));
}

TEST(Duration, RejectsWhatIsNotADuration) {
    for (const char* text : {"", "10", "10 s", "-1s", "1.5s", "10sec", "s", "1d", "ms10", "1s-"}) {
        auto duration = parse_duration(text);
        ASSERT_FALSE(duration.has_value()) << text;
        EXPECT_EQ(duration.error().kind(), base::ErrorKind::InvalidArgument);
        EXPECT_NE(duration.error().message().find(fmt::format("`{}`", text)), std::string::npos)
            << duration.error().message();
    }
    EXPECT_NE(parse_duration("10").error().message().find("missing unit"), std::string::npos);
    EXPECT_NE(parse_duration("1d").error().message().find("unknown unit `d`"), std::string::npos);
    EXPECT_FALSE(parse_duration("99999999999999999999s").has_value());
}

TEST(Duration, FormatsTheShortestExactSpelling) {
    EXPECT_EQ(format_duration(Duration(0)), "0s");
    EXPECT_EQ(format_duration(Duration(500)), "500ms");
    EXPECT_EQ(format_duration(Duration(1500)), "1500ms");
    EXPECT_EQ(format_duration(Duration(10000)), "10s");
    EXPECT_EQ(format_duration(Duration(90000)), "1m30s");
    EXPECT_EQ(format_duration(Duration(3600000)), "1h");
    for (const char* text : {"500ms", "10s", "1m30s", "2h5s"}) {
        EXPECT_EQ(format_duration(parse_duration(text).value()), text);
    }
}

TEST(Signals, AcceptsNamesInAnySpelling) {
    EXPECT_EQ(parse_signal("SIGTERM").value().number, SIGTERM);
    EXPECT_EQ(parse_signal("SIGTERM").value().name, "SIGTERM");
    EXPECT_EQ(parse_signal("TERM").value().number, SIGTERM);
    EXPECT_EQ(parse_signal("sigint").value().number, SIGINT);
    EXPECT_EQ(parse_signal("sigint").value().name, "SIGINT");
    EXPECT_EQ(parse_signal("SIGQUIT").value().number, SIGQUIT);
    EXPECT_EQ(parse_signal("SIGKILL").value().number, SIGKILL);
    EXPECT_EQ(parse_signal("SIGUSR2").value().number, SIGUSR2);
    EXPECT_EQ(parse_signal("SIGWINCH").value().number, SIGWINCH);
    EXPECT_EQ(parse_signal("SIGIOT").value().number, SIGABRT);
    EXPECT_EQ(parse_signal("SIGRTMIN").value().number, SIGRTMIN);
    EXPECT_EQ(parse_signal("SIGRTMIN+3").value().number, SIGRTMIN + 3);
    EXPECT_EQ(parse_signal("SIGRTMIN+3").value().name, "SIGRTMIN+3");
    EXPECT_EQ(parse_signal("SIGRTMAX-1").value().number, SIGRTMAX - 1);
}

TEST(Signals, RejectsUnknownNames) {
    for (const char* text : {"", "SIG", "SIGTERN", "15", "TERM ", "SIGRTMIN+99", "SIGRTMIN-1",
                             "SIGRTMAX+1", "SIGRTMIN+", "SIGRTMIN+x",
                             // Seen with fuzz/config_procfile_fuzz (UBSan): a second sign was
                             // accepted, and large offsets overflowed `int` (UB).
                             "SIGRTMIN+-0", "SIGRTMAX--0", "SIGRTMIN++1", "SIGRTMIN+2147483647",
                             "SIGRTMAX--2147483648", "SIGRTMIN+99999999999"}) {
        auto signal = parse_signal(text);
        ASSERT_FALSE(signal.has_value()) << text;
        EXPECT_NE(signal.error().message().find("unknown signal"), std::string::npos);
    }
}

TEST(Memory, ParsesSizes) {
    EXPECT_EQ(parse_memory("512M").value(), 512ull << 20);
    EXPECT_EQ(parse_memory("512m").value(), 512ull << 20);
    EXPECT_EQ(parse_memory("1G").value(), 1ull << 30);
    EXPECT_EQ(parse_memory("1.5G").value(), 3ull << 29);
    EXPECT_EQ(parse_memory("64MiB").value(), 64ull << 20);
    EXPECT_EQ(parse_memory("64MB").value(), 64ull << 20);
    EXPECT_EQ(parse_memory("100k").value(), 102400u);
    EXPECT_EQ(parse_memory("2048").value(), 2048u);
    EXPECT_EQ(parse_memory("2T").value(), 2ull << 40);
}

TEST(Memory, RejectsBadSizes) {
    for (const char* text : {"", "M", "12X", "-1M", "0", "0.1", "1..2M", "99999999999T"}) {
        EXPECT_FALSE(parse_memory(text).has_value()) << text;
    }
}

TEST(Names, ServiceAndEnvKeyCharsets) {
    EXPECT_TRUE(is_valid_service_name("web"));
    EXPECT_TRUE(is_valid_service_name("my_web-2"));
    EXPECT_FALSE(is_valid_service_name(""));
    EXPECT_FALSE(is_valid_service_name("a.b"));
    EXPECT_FALSE(is_valid_service_name("a b"));
    EXPECT_TRUE(is_valid_env_key("_A.b-c9"));
    EXPECT_FALSE(is_valid_env_key("9A"));
    EXPECT_FALSE(is_valid_env_key("A=B"));
    EXPECT_FALSE(is_valid_env_key(""));
}

}  // namespace
}  // namespace locald::config
