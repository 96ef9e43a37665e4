// The .env dialect, rule by rule (../shared/design/config.md, ".env dialect").
#include "config/dotenv.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace locald::config {
namespace {

const std::string kFile = "/p/.env";

std::vector<std::pair<std::string, std::string>> pairs(const std::vector<EnvEntry>& entries) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& entry : entries) {
        out.emplace_back(entry.key, entry.value);
    }
    return out;
}

struct GoodCase {
    const char* name;
    std::string text;
    std::vector<std::pair<std::string, std::string>> expected;
};

class DotenvGood : public ::testing::TestWithParam<GoodCase> {};

TEST_P(DotenvGood, Parses) {
    const GoodCase& test = GetParam();
    Environment environment{{"HOME", "/home/u"}, {"SHADOW", "from-env"}, {"EMPTY", ""}};
    auto entries = parse_dotenv(test.text, kFile, environment);
    ASSERT_TRUE(entries.has_value()) << entries.error().to_string();
    EXPECT_EQ(pairs(entries.value()), test.expected);
}

using P = std::vector<std::pair<std::string, std::string>>;

INSTANTIATE_TEST_SUITE_P(
    Rules, DotenvGood,
    ::testing::Values(
        GoodCase{"plain", "A=b\n", P{{"A", "b"}}},
        GoodCase{"no_final_newline", "A=b", P{{"A", "b"}}},
        GoodCase{"export_prefix", "export A=b\n", P{{"A", "b"}}},
        GoodCase{"export_prefix_tabs", "export\tA\t=\tb\n", P{{"A", "b"}}},
        GoodCase{"key_named_export", "export=1\n", P{{"export", "1"}}},
        GoodCase{"spaces_around_equals", "A = b\n", P{{"A", "b"}}},
        GoodCase{"unquoted_trimmed", "A=   spaced value  \t\n", P{{"A", "spaced value"}}},
        GoodCase{"hash_inside_word_is_kept", "A=b#c\n", P{{"A", "b#c"}}},
        GoodCase{"hash_after_space_is_comment", "A=b #c\n", P{{"A", "b"}}},
        GoodCase{"hash_after_tab_is_comment", "A=b\t#c\n", P{{"A", "b"}}},
        GoodCase{"hash_right_after_equals_is_kept", "A=#c\n", P{{"A", "#c"}}},
        GoodCase{"hash_after_equals_and_space_is_comment", "A= #c\n", P{{"A", ""}}},
        GoodCase{"empty_value", "A=\n", P{{"A", ""}}},
        GoodCase{"comment_and_blank_lines", "# top\n\n   \nA=1\n  # indented\n", P{{"A", "1"}}},
        GoodCase{"key_charset", "a.b-c_D9=1\n_x=2\n", P{{"a.b-c_D9", "1"}, {"_x", "2"}}},
        GoodCase{"single_quotes_literal", "A='lit $HOME ${HOME} \\n # x'\n",
                 P{{"A", "lit $HOME ${HOME} \\n # x"}}},
        GoodCase{"single_quotes_multiline", "A='one\ntwo'\nB=3\n",
                 P{{"A", "one\ntwo"}, {"B", "3"}}},
        GoodCase{"single_quotes_then_comment", "A='x' # c\n", P{{"A", "x"}}},
        GoodCase{"double_quotes_escapes", "A=\"n\\nr\\rt\\tq\\\"b\\\\d\\$\"\n",
                 P{{"A", "n\nr\rt\tq\"b\\d$"}}},
        GoodCase{"double_quotes_unknown_escape_kept", "A=\"C:\\dir\"\n", P{{"A", "C:\\dir"}}},
        GoodCase{"double_quotes_multiline", "A=\"one\ntwo\"\n", P{{"A", "one\ntwo"}}},
        GoodCase{"double_quotes_keep_hash", "A=\"x #y\" # c\n", P{{"A", "x #y"}}},
        GoodCase{"double_quotes_keep_spaces", "A=\"  x  \"\n", P{{"A", "  x  "}}},
        GoodCase{"interpolate_braces", "B=1\nA=x${B}y\n", P{{"B", "1"}, {"A", "x1y"}}},
        GoodCase{"interpolate_bare", "B=1\nA=$B/z\n", P{{"B", "1"}, {"A", "1/z"}}},
        GoodCase{"interpolate_environment", "A=$HOME/x\n", P{{"A", "/home/u/x"}}},
        GoodCase{"same_file_before_environment", "SHADOW=mine\nA=$SHADOW\n",
                 P{{"SHADOW", "mine"}, {"A", "mine"}}},
        GoodCase{"later_key_not_visible", "A=$LATER\nLATER=1\n", P{{"A", ""}, {"LATER", "1"}}},
        GoodCase{"unset_is_empty", "A=[${NOPE}][$NOPE]\n", P{{"A", "[][]"}}},
        GoodCase{"default_when_unset", "A=${NOPE:-fallback}\n", P{{"A", "fallback"}}},
        GoodCase{"default_when_empty", "A=${EMPTY:-fallback}\n", P{{"A", "fallback"}}},
        GoodCase{"default_not_used_when_set", "A=${HOME:-fallback}\n", P{{"A", "/home/u"}}},
        GoodCase{"nested_default", "A=${NOPE:-${HOME}}\n", P{{"A", "/home/u"}}},
        GoodCase{"interpolate_in_double_quotes", "A=\"$HOME and ${HOME}\"\n",
                 P{{"A", "/home/u and /home/u"}}},
        GoodCase{"escaped_dollar_not_interpolated", "A=\"\\$HOME\"\n", P{{"A", "$HOME"}}},
        GoodCase{"command_substitution_never_runs", "A=$(touch /tmp/pwned)\n",
                 P{{"A", "$(touch /tmp/pwned)"}}},
        GoodCase{"command_substitution_in_double_quotes", "A=\"$(id) $HOME\"\n",
                 P{{"A", "$(id) /home/u"}}},
        GoodCase{"lone_dollar", "A=a$ $1 $\n", P{{"A", "a$ $1 $"}}},
        GoodCase{"utf8_bom",
                 "\xEF\xBB\xBF"
                 "A=1\n",
                 P{{"A", "1"}}},
        GoodCase{"crlf", "A=1\r\nB='x'\r\nC=\"y\"\r\n", P{{"A", "1"}, {"B", "x"}, {"C", "y"}}},
        GoodCase{"duplicates_all_reported_in_order", "A=1\nA=2\n", P{{"A", "1"}, {"A", "2"}}},
        GoodCase{"duplicate_interpolates_latest", "A=1\nA=2\nB=$A\n",
                 P{{"A", "1"}, {"A", "2"}, {"B", "2"}}},
        GoodCase{"utf8_value", "A=h\xC3\xA9llo\n", P{{"A", "h\xC3\xA9llo"}}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Dotenv, LineNumbersFollowMultilineValues) {
    auto entries = parse_dotenv("A='1\n2\n3'\n\nB=\"x\ny\"\nC=1\n", kFile, {});
    ASSERT_TRUE(entries.has_value()) << entries.error().to_string();
    ASSERT_EQ(entries->size(), 3u);
    EXPECT_EQ((*entries)[0].location.line, 1);
    EXPECT_EQ((*entries)[1].location.line, 5);
    EXPECT_EQ((*entries)[2].location.line, 7);
    EXPECT_EQ((*entries)[2].location.file, kFile);
    EXPECT_EQ((*entries)[2].location.to_string(), "/p/.env:7");
    EXPECT_EQ((*entries)[2].origin, EnvOrigin::DotEnv);
}

// `B=$A$A…` on each line grows geometrically: before the cap, 419 bytes of
// .env made fuzz/config_dotenv_fuzz ask for 15 TB. Values are capped at
// what Linux can pass to a process in one environment string.
TEST(Dotenv, InterpolationCannotGrowPastWhatExecAccepts) {
    auto chain = [](std::string first, int lines) {
        std::string text = "A=" + first + "\n";
        std::string previous = "A";
        for (int i = 0; i < lines; ++i) {
            std::string key = "B" + std::to_string(i);
            // Unquoted `$A…` and double-quoted `"${A}…"` alternate.
            std::string quote = i % 2 == 0 ? "" : "\"";
            text += key + "=" + quote;
            for (int j = 0; j < 16; ++j) {
                text += i % 2 == 0 ? "$" + previous : "${" + previous + "}";
            }
            text += quote + "\n";
            previous = key;
        }
        return text;
    };
    // 16 * 8192 bytes: exactly the limit, accepted.
    auto at_limit = parse_dotenv(chain(std::string(8192, 'x'), 1), kFile, {});
    ASSERT_TRUE(at_limit.has_value()) << at_limit.error().message();
    EXPECT_EQ(at_limit->back().value.size(), 128u * 1024);
    // 16^5 bytes on line 5: refused, naming the line.
    auto over = parse_dotenv(chain(std::string(16, 'x'), 4), kFile, {});
    ASSERT_FALSE(over.has_value()) << "parsed a " << over->back().value.size() << "-byte value";
    EXPECT_EQ(over.error().message().rfind("/p/.env:5: ", 0), 0u) << over.error().message();
    EXPECT_NE(over.error().message().find("longer than 131072 bytes after interpolation"),
              std::string::npos)
        << over.error().message();
    // The geometric bomb fails as fast (16^10 bytes if expanded).
    auto bomb = parse_dotenv(chain(std::string(16, 'x'), 9), kFile, {});
    ASSERT_FALSE(bomb.has_value());
    // A default that expands past the limit is refused too.
    auto nested =
        parse_dotenv(chain(std::string(8192, 'x'), 1) + "C=${UNSET:-$B0$B0}\n", kFile, {});
    ASSERT_FALSE(nested.has_value());
    EXPECT_EQ(nested.error().message().rfind("/p/.env:3: ", 0), 0u) << nested.error().message();
}

TEST(Dotenv, OriginIsTheCallers) {
    auto entries = parse_dotenv("A=1\n", kFile, {}, EnvOrigin::EnvFile);
    ASSERT_TRUE(entries.has_value());
    EXPECT_EQ((*entries)[0].origin, EnvOrigin::EnvFile);
}

struct BadCase {
    const char* name;
    std::string text;
    std::string prefix;  // the error starts with this (file:line: …)
    std::string mentions;
};

class DotenvBad : public ::testing::TestWithParam<BadCase> {};

TEST_P(DotenvBad, NamesFileAndLine) {
    const BadCase& test = GetParam();
    auto entries = parse_dotenv(test.text, kFile, {});
    ASSERT_FALSE(entries.has_value()) << "parsed: " << test.text;
    EXPECT_EQ(entries.error().kind(), base::ErrorKind::InvalidArgument);
    const std::string& message = entries.error().message();
    EXPECT_EQ(message.rfind(test.prefix, 0), 0u) << message;
    EXPECT_NE(message.find(test.mentions), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(
    Rules, DotenvBad,
    ::testing::Values(
        BadCase{"no_equals", "A\n", "/p/.env:1: ", "expected `=` after `A`"},
        BadCase{"no_equals_later_line", "A=1\n\nB\n", "/p/.env:3: ", "after `B`"},
        BadCase{"key_starts_with_digit", "1A=2\n", "/p/.env:1: ", "expected `KEY=value`"},
        BadCase{"key_starts_with_dash", "-A=2\n", "/p/.env:1: ", "expected `KEY=value`"},
        BadCase{"space_in_key", "X=1\nA b=c\n", "/p/.env:2: ", "expected `=` after `A`"},
        BadCase{"empty_key", "=x\n", "/p/.env:1: ", "expected `KEY=value`"},
        BadCase{"unterminated_single", "A='open\nB=2\n", "/p/.env:1: ", "unterminated single"},
        BadCase{"unterminated_double_names_start", "X=1\nA=\"open\nB=2\n",
                "/p/.env:2: ", "unterminated double"},
        BadCase{"text_after_closing_quote", "A=\"x\"y\n", "/p/.env:1: ", "after the closing quote"},
        BadCase{"text_after_single_quote", "A='x' y\n", "/p/.env:1: ", "after the closing quote"},
        BadCase{"text_after_multiline_quote_names_its_last_line", "A='x\ny'z\n",
                "/p/.env:2: ", "after the closing quote"},
        BadCase{"unterminated_brace", "A=${B\n", "/p/.env:1: ", "unterminated"},
        BadCase{"unsupported_brace_form", "A=${B?err}\n", "/p/.env:1: ", "invalid `${B?err}`"},
        BadCase{"empty_brace", "A=${}\n", "/p/.env:1: ", "invalid `${}`"},
        BadCase{"default_nesting_bounded",
                "A=" +
                    [] {
                        std::string text;
                        for (int i = 0; i < 40; ++i) {
                            text += "${X:-";
                        }
                        return text + "deep" + std::string(40, '}') + "\n";
                    }(),
                "/p/.env:1: ", "nest deeper than 16"},
        BadCase{"nul_byte", std::string("A=1\0", 4), "/p/.env: ", "NUL"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace locald::config
