#include "base/json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <utility>

namespace locald::base {
namespace {

Json parse_ok(std::string_view text) {
    auto parsed = Json::parse(text);
    EXPECT_TRUE(parsed) << text << ": " << (parsed ? "" : parsed.error().to_string());
    return parsed ? parsed.release_value() : Json();
}

std::string parse_error(std::string_view text, const JsonParseOptions& options = {}) {
    auto parsed = Json::parse(text, options);
    EXPECT_FALSE(parsed) << text;
    if (parsed) {
        return "";
    }
    EXPECT_EQ(parsed.error().kind(), ErrorKind::InvalidArgument);
    return parsed.error().message();
}

TEST(JsonTest, ParsesEveryType) {
    Json doc =
        parse_ok(R"({"null":null,"t":true,"f":false,"int":-42,"big":9223372036854775807,)"
                 R"("dbl":1.5,"exp":1e3,"str":"h\u00e9\n","arr":[1,"two",[3]],"obj":{"k":"v"}})");
    ASSERT_TRUE(doc.is_object());
    EXPECT_TRUE(doc.find("null")->is_null());
    EXPECT_EQ(doc.find("t")->as_bool(), true);
    EXPECT_EQ(doc.find("f")->as_bool(), false);
    EXPECT_EQ(doc.find("int")->as_int(), -42);
    EXPECT_EQ(doc.find("big")->as_int(), std::numeric_limits<int64_t>::max());
    EXPECT_TRUE(doc.find("dbl")->is_double());
    EXPECT_EQ(doc.find("dbl")->as_double(), 1.5);
    EXPECT_TRUE(doc.find("exp")->is_double());
    EXPECT_EQ(doc.find("exp")->as_double(), 1000.0);
    EXPECT_EQ(doc.find("str")->as_string(), "h\xc3\xa9\n");
    ASSERT_EQ(doc.find("arr")->size(), 3u);
    EXPECT_EQ(doc.find("arr")->as_array()[1].as_string(), "two");
    EXPECT_EQ(doc.find("arr")->as_array()[2].as_array()[0].as_int(), 3);
    EXPECT_EQ(doc.find("obj")->find("k")->as_string(), "v");
    EXPECT_EQ(doc.find("missing"), nullptr);
    EXPECT_EQ(doc.find("str")->find("x"), nullptr);
    // Top-level scalars are JSON too.
    EXPECT_EQ(parse_ok("7").as_int(), 7);
    EXPECT_EQ(parse_ok(" \"x\" ").as_string(), "x");
    EXPECT_TRUE(parse_ok("null").is_null());
}

TEST(JsonTest, IntegersBeyondInt64BecomeDoubles) {
    Json big = parse_ok("18446744073709551616");
    ASSERT_TRUE(big.is_double());
    EXPECT_EQ(big.as_double(), 18446744073709551616.0);
    EXPECT_TRUE(parse_ok("-9223372036854775808").is_int());
}

TEST(JsonTest, KeepsKeyOrderAndRoundTrips) {
    const std::string text =
        R"({"z":1,"a":[true,false,null],"m":{"y":"\"q\"","b":-0.25},"e":{},"l":[]})";
    Json doc = parse_ok(text);
    EXPECT_EQ(doc.as_object()[0].first, "z");
    EXPECT_EQ(doc.as_object()[1].first, "a");
    EXPECT_EQ(doc.dump(), text);
    EXPECT_EQ(parse_ok(doc.dump(true)), doc);
}

TEST(JsonTest, PrettyOutput) {
    Json doc =
        Json::object({{"name", "web"}, {"ports", Json::array({80, 443})}, {"env", Json::object()}});
    EXPECT_EQ(doc.dump(true),
              "{\n"
              "  \"name\": \"web\",\n"
              "  \"ports\": [\n"
              "    80,\n"
              "    443\n"
              "  ],\n"
              "  \"env\": {}\n"
              "}");
    EXPECT_EQ(doc.dump(), R"({"name":"web","ports":[80,443],"env":{}})");
}

TEST(JsonTest, EscapesStrings) {
    std::string nasty = std::string("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f", 14) + std::string(1, '\0') +
                        "\xe2\x82\xac\xf0\x9f\x98\x80";
    Json value(nasty);
    EXPECT_EQ(
        value.dump(),
        "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\\u0000\xe2\x82\xac\xf0\x9f\x98\x80\"");
    EXPECT_EQ(parse_ok(value.dump()).as_string(), nasty);
    // Keys are escaped the same way.
    Json object = Json::object({{"a\"\n", 1}});
    EXPECT_EQ(object.dump(), "{\"a\\\"\\n\":1}");
    EXPECT_EQ(parse_ok(object.dump()), object);
}

// Seen with fuzz/config_project_fuzz: a Procfile command with bytes that
// are not UTF-8 made `locald config --json` print JSON that parse() (and
// any strict reader) refuses. Ill-formed sequences are written as U+FFFD.
TEST(JsonTest, DumpIsValidJsonForStringsThatAreNotUtf8) {
    const std::string replacement = "\xEF\xBF\xBD";
    const std::pair<std::string, std::string> cases[] = {
        {"a\xdb\xdbz", "a" + replacement + replacement + "z"},
        {"\xc0\x80", replacement + replacement},                    // overlong NUL
        {"\xed\xa0\x80", replacement + replacement + replacement},  // UTF-16 surrogate
        {"\xf4\x90\x80\x80", replacement + replacement + replacement + replacement},  // > U+10FFFF
        {"\xe2\x82", replacement + replacement},                                      // truncated
        {"\xff", replacement},
        {"ok \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "ok \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
    };
    for (const auto& [bytes, expected] : cases) {
        SCOPED_TRACE(testing::PrintToString(bytes));
        for (bool pretty : {false, true}) {
            Json value = Json::object({{bytes, Json::array({bytes})}});
            auto parsed = Json::parse(value.dump(pretty));
            ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
            ASSERT_TRUE(parsed->is_object());
            EXPECT_EQ(parsed->as_object()[0].first, expected);
            EXPECT_EQ(parsed->as_object()[0].second.as_array()[0].as_string(), expected);
        }
    }
}

TEST(JsonTest, Numbers) {
    EXPECT_EQ(Json(0.1).dump(), "0.1");
    EXPECT_EQ(Json(1.0).dump(), "1.0");
    EXPECT_EQ(Json(-2.5e-300).dump(), "-2.5e-300");
    EXPECT_EQ(Json(1e300).dump(), "1e+300");
    EXPECT_EQ(Json(std::nan("")).dump(), "null");
    EXPECT_EQ(Json(std::numeric_limits<double>::infinity()).dump(), "null");
    EXPECT_EQ(Json(int64_t{-7}).dump(), "-7");
    EXPECT_EQ(Json(uint16_t{7}).dump(), "7");
    for (double value : {0.1, 1.0 / 3, 123456789.125, -0.0, 5e-324}) {
        Json round = parse_ok(Json(value).dump());
        ASSERT_TRUE(round.is_double()) << value;
        EXPECT_EQ(round.as_double(), value);
    }
}

TEST(JsonTest, RejectsMalformedInputWithPosition) {
    std::string message = parse_error("{\n  \"a\": 1,\n  \"b\" 2\n}");
    EXPECT_NE(message.find("line 3"), std::string::npos) << message;
    EXPECT_NE(message.find("separated by a colon"), std::string::npos) << message;
    for (const char* text : {"",          "   ",           "{",       "[1,2",     "[1,]",
                             "{\"a\":}",  "{'a':1}",       "nul",     "01",       "1.",
                             "-",         "\"abc",         "\"\\x\"", "[1] [2]",  "{\"a\":1}x",
                             "/* c */ 1", "\"tab\there\"", "NaN",     "Infinity", "\"\xff\"",
                             "\"\xc3\"",  "{\"a\" 1}",     "[1 2]"}) {
        parse_error(text);
    }
}

TEST(JsonTest, RejectsDuplicateKeys) {
    std::string message = parse_error(R"({"a":1,"b":{"x":1,"x":2}})");
    EXPECT_NE(message.find("duplicate key \"x\""), std::string::npos) << message;
    // Same key in different objects is fine.
    parse_ok(R"({"x":{"x":1},"y":{"x":2}})");
}

TEST(JsonTest, DepthAndSizeLimits) {
    std::string deep(300, '[');
    deep += std::string(300, ']');
    std::string message = parse_error(deep);
    EXPECT_NE(message.find("nesting deeper than 256"), std::string::npos) << message;
    std::string ok_depth = std::string(256, '[') + std::string(256, ']');
    parse_ok(ok_depth);
    EXPECT_NE(parse_error("[1,2,3]", {.max_bytes = 6}).find("exceeds the 6-byte limit"),
              std::string::npos);
    EXPECT_TRUE(Json::parse("[1,2,3]", {.max_bytes = 7}));
    EXPECT_FALSE(Json::parse("[[1]]", {.max_depth = 1}));
    EXPECT_TRUE(Json::parse("[1]", {.max_depth = 1}));
}

TEST(JsonTest, BuildsAndEdits) {
    Json doc;
    doc["b"] = 1;
    doc["a"]["nested"] = "x";
    doc.set("b", 2);
    doc.set("c", Json::array());
    doc["c"].push_back(true);
    doc["c"].push_back(nullptr);
    EXPECT_EQ(doc.dump(), R"({"b":2,"a":{"nested":"x"},"c":[true,null]})");
    EXPECT_TRUE(doc.erase("a"));
    EXPECT_FALSE(doc.erase("a"));
    EXPECT_EQ(doc.dump(), R"({"b":2,"c":[true,null]})");
    EXPECT_EQ(doc.size(), 2u);
    EXPECT_TRUE(doc.contains("c"));
    Json list;
    list.push_back("x");
    EXPECT_EQ(list.dump(), R"(["x"])");
    EXPECT_EQ(Json::object({{"k", 1}, {"k", 2}}).dump(), R"({"k":2})");
    EXPECT_NE(Json(1), Json(1.0));
    EXPECT_EQ(Json("a"), Json(std::string("a")));
}

TEST(JsonTest, CheckedGetters) {
    Json doc = parse_ok(R"({"s":"v","i":3,"d":2.5,"b":true,"o":{},"a":[]})");
    EXPECT_EQ(doc.get_string("s").value(), "v");
    EXPECT_EQ(doc.get_int("i").value(), 3);
    EXPECT_EQ(doc.get_double("d").value(), 2.5);
    EXPECT_EQ(doc.get_double("i").value(), 3.0);
    EXPECT_EQ(doc.get_bool("b").value(), true);
    EXPECT_TRUE(doc.get_object("o").value()->is_object());
    EXPECT_TRUE(doc.get_array("a").value()->is_array());
    auto missing = doc.get_string("nope");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().kind(), ErrorKind::NotFound);
    EXPECT_EQ(missing.error().message(), "missing \"nope\"");
    auto wrong = doc.get_string("i");
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.error().kind(), ErrorKind::InvalidArgument);
    EXPECT_EQ(wrong.error().message(), "\"i\": expected a string, got an integer");
    EXPECT_FALSE(doc.get_int("d"));
    EXPECT_FALSE(Json(1).get_string("x"));
}

TEST(JsonDeathTest, UncheckedAccessorAbortsOnMismatch) {
    EXPECT_DEATH((void)Json(1).as_string(), "Json is an integer, not a string");
}

}  // namespace
}  // namespace locald::base
