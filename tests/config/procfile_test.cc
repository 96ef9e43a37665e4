// The Procfile dialect (../shared/design/config.md, "Procfile").
#include "config/procfile.h"

#include <gtest/gtest.h>

namespace locald::config {
namespace {

const std::string kFile = "/p/Procfile";

TEST(Procfile, ParsesForemanLines) {
    auto entries = parse_procfile(
        "web: bundle exec rails s -p $PORT\n"
        "worker:\tbin/worker --queue=a:b  \n"
        "release_2-x:echo done\n",
        kFile);
    ASSERT_TRUE(entries.has_value()) << entries.error().to_string();
    ASSERT_EQ(entries->size(), 3u);
    EXPECT_EQ((*entries)[0].name, "web");
    EXPECT_EQ((*entries)[0].command, "bundle exec rails s -p $PORT");
    EXPECT_EQ((*entries)[0].line, 1);
    EXPECT_EQ((*entries)[1].name, "worker");
    // Verbatim after the separator blanks: later colons and trailing blanks stay.
    EXPECT_EQ((*entries)[1].command, "bin/worker --queue=a:b  ");
    EXPECT_EQ((*entries)[2].name, "release_2-x");
    EXPECT_EQ((*entries)[2].command, "echo done");
    EXPECT_EQ((*entries)[2].line, 3);
}

TEST(Procfile, SkipsBlankAndCommentLinesButCountsThem) {
    auto entries = parse_procfile("# comment\n\n   \n  # indented comment\nweb: run\n", kFile);
    ASSERT_TRUE(entries.has_value()) << entries.error().to_string();
    ASSERT_EQ(entries->size(), 1u);
    EXPECT_EQ((*entries)[0].line, 5);
}

TEST(Procfile, StripsTrailingCarriageReturnAndBom) {
    auto entries = parse_procfile("\xEF\xBB\xBFweb: run it\r\nworker: go\r\n", kFile);
    ASSERT_TRUE(entries.has_value()) << entries.error().to_string();
    ASSERT_EQ(entries->size(), 2u);
    EXPECT_EQ((*entries)[0].name, "web");
    EXPECT_EQ((*entries)[0].command, "run it");
    EXPECT_EQ((*entries)[1].command, "go");
}

TEST(Procfile, EmptyFileHasNoProcesses) {
    auto entries = parse_procfile("", kFile);
    ASSERT_TRUE(entries.has_value());
    EXPECT_TRUE(entries->empty());
}

struct BadCase {
    const char* name;
    std::string text;
    std::string expected;  // full message
};

class ProcfileBad : public ::testing::TestWithParam<BadCase> {};

TEST_P(ProcfileBad, NamesFileAndLine) {
    auto entries = parse_procfile(GetParam().text, kFile);
    ASSERT_FALSE(entries.has_value());
    EXPECT_EQ(entries.error().kind(), base::ErrorKind::InvalidArgument);
    EXPECT_EQ(entries.error().message(), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Rules, ProcfileBad,
    ::testing::Values(
        BadCase{"no_colon", "web: ok\nworker run\n",
                "/p/Procfile:2: expected `NAME: command` (NAME matches [A-Za-z0-9_-]+), found "
                "`worker run`"},
        BadCase{"bad_name", "my.web: run\n",
                "/p/Procfile:1: expected `NAME: command` (NAME matches [A-Za-z0-9_-]+), found "
                "`my.web: run`"},
        BadCase{"space_before_colon", "web : run\n",
                "/p/Procfile:1: expected `NAME: command` (NAME matches [A-Za-z0-9_-]+), found "
                "`web : run`"},
        BadCase{"indented_line", "  web: run\n",
                "/p/Procfile:1: expected `NAME: command` (NAME matches [A-Za-z0-9_-]+), found "
                "`  web: run`"},
        BadCase{"empty_name", ": run\n",
                "/p/Procfile:1: expected `NAME: command` (NAME matches [A-Za-z0-9_-]+), found "
                "`: run`"},
        BadCase{"empty_command", "\n\nweb:\n", "/p/Procfile:3: process `web` has no command"},
        BadCase{"blank_command", "web:  \t\r\n", "/p/Procfile:1: process `web` has no command"},
        BadCase{"duplicate", "web: a\nworker: b\n\nweb: c\n",
                "/p/Procfile:4: duplicate process `web` (first defined on line 1)"},
        BadCase{"nul_byte", std::string("web: a\0", 7),
                "/p/Procfile: not a text file (it contains a NUL byte)"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace locald::config
