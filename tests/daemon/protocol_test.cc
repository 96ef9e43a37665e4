#include "daemon/protocol.h"

#include <gtest/gtest.h>

#include "daemon/internal/line_buffer.h"

namespace locald::daemon {
namespace {

TEST(LineBuffer, SplitsChunksIntoLines) {
    internal::LineBuffer buffer;
    buffer.append("{\"a\":");
    EXPECT_FALSE(buffer.next_line());
    buffer.append("1}\n{\"b\"");
    EXPECT_EQ(buffer.next_line(), "{\"a\":1}");
    EXPECT_FALSE(buffer.next_line());
    EXPECT_EQ(buffer.pending(), 4u);
    buffer.append(":2}\n\n");
    EXPECT_EQ(buffer.next_line(), "{\"b\":2}");
    EXPECT_EQ(buffer.next_line(), "");
    EXPECT_FALSE(buffer.next_line());
    EXPECT_EQ(buffer.pending(), 0u);
}

TEST(LineBuffer, HasNoLineLimit) {
    internal::LineBuffer buffer;
    std::string big(8u << 20, 'x');
    for (size_t i = 0; i < big.size(); i += 4096) {
        buffer.append(std::string_view(big).substr(i, 4096));
        ASSERT_FALSE(buffer.next_line());
    }
    buffer.append("\n");
    auto line = buffer.next_line();
    ASSERT_TRUE(line);
    EXPECT_EQ(line->size(), big.size());
}

TEST(Protocol, RoundTripsEveryShape) {
    auto request = parse_message(encode_request(7, "up", base::Json::object({{"dir", "/p"}})));
    ASSERT_TRUE(request) << request.error().to_string();
    EXPECT_EQ(request->kind, Message::Kind::Request);
    EXPECT_EQ(request->id, 7);
    EXPECT_EQ(request->method, "up");
    EXPECT_EQ(request->body.find("dir")->as_string(), "/p");

    auto event = parse_message(encode_event(7, base::Json::object({{"x", 1}})));
    ASSERT_TRUE(event);
    EXPECT_EQ(event->kind, Message::Kind::Event);
    EXPECT_EQ(event->body.find("x")->as_int(), 1);

    auto result = parse_message(encode_result(7, base::Json(true)));
    ASSERT_TRUE(result);
    EXPECT_EQ(result->kind, Message::Kind::Result);

    auto error = parse_message(encode_error(7, base::not_found("no service `x`")));
    ASSERT_TRUE(error);
    EXPECT_EQ(error->kind, Message::Kind::Error);
    ASSERT_TRUE(error->error);
    EXPECT_EQ(error->error->kind(), base::ErrorKind::NotFound);
    EXPECT_EQ(error->error->message(), "no service `x`");
}

TEST(Protocol, EncodedMessagesAreOneLine) {
    std::string line = encode_event(1, base::Json::object({{"text", "a\nb\r\nc"}}));
    EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(Protocol, RejectsMalformedMessages) {
    EXPECT_FALSE(parse_message("[1,2]"));
    EXPECT_FALSE(parse_message("{\"method\":\"up\"}"));              // no id
    EXPECT_FALSE(parse_message("{\"id\":\"1\",\"method\":\"x\"}"));  // id not an int
    EXPECT_FALSE(parse_message("{\"id\":1,\"method\":3}"));
    EXPECT_FALSE(parse_message("{\"id\":1,\"method\":\"x\",\"params\":[]}"));
    EXPECT_FALSE(parse_message("{\"id\":1}"));
    EXPECT_FALSE(parse_message("{\"id\":1,"));
}

TEST(Protocol, ErrorCodesMapBackToKinds) {
    for (auto kind : {base::ErrorKind::InvalidArgument, base::ErrorKind::NotFound,
                      base::ErrorKind::PermissionDenied, base::ErrorKind::Unavailable,
                      base::ErrorKind::Cancelled, base::ErrorKind::Internal}) {
        EXPECT_EQ(error_kind_from_code(error_code(kind)), kind);
    }
    EXPECT_EQ(error_kind_from_code("no-such-code"), base::ErrorKind::Internal);
}

TEST(Protocol, Base64RoundTripsBinary) {
    std::string all;
    for (int i = 0; i < 256; ++i) {
        all.push_back(static_cast<char>(i));
    }
    for (size_t n : {0u, 1u, 2u, 3u, 4u, 255u, 256u}) {
        std::string data = all.substr(0, n);
        auto decoded = base64_decode(base64_encode(data));
        ASSERT_TRUE(decoded) << n;
        EXPECT_EQ(*decoded, data);
    }
    EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
    EXPECT_EQ(base64_encode("fo"), "Zm8=");
    EXPECT_FALSE(base64_decode("Zm9"));
    EXPECT_FALSE(base64_decode("Zm$v"));
    EXPECT_FALSE(base64_decode("Z=9v"));
}

TEST(Protocol, SanitizeUtf8KeepsValidTextAndReplacesTheRest) {
    EXPECT_EQ(sanitize_utf8("plain ascii"), "plain ascii");
    EXPECT_EQ(sanitize_utf8("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80"),
              "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80");
    EXPECT_EQ(sanitize_utf8("a\xff"
                            "b"),
              "a\xef\xbf\xbd"
              "b");
    EXPECT_EQ(sanitize_utf8("\xc3"), "\xef\xbf\xbd");                                  // truncated
    EXPECT_EQ(sanitize_utf8("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");                  // overlong
    EXPECT_EQ(sanitize_utf8("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // surrogate
    // The result always parses as a JSON string.
    auto json = base::Json::parse(base::Json(sanitize_utf8("x\xfe\xfe y")).dump());
    EXPECT_TRUE(json);
}

TEST(Protocol, BuildIdIsStable) {
    EXPECT_FALSE(binary_build_id().empty());
    EXPECT_EQ(binary_build_id(), binary_build_id());
}

}  // namespace
}  // namespace locald::daemon
