#include "daemon/protocol.h"

#include "daemon/internal/build_id.h"

namespace locald::daemon {

namespace {

constexpr std::pair<base::ErrorKind, std::string_view> kCodes[] = {
    {base::ErrorKind::InvalidArgument, "invalid_argument"},
    {base::ErrorKind::NotFound, "not_found"},
    {base::ErrorKind::AlreadyExists, "already_exists"},
    {base::ErrorKind::PermissionDenied, "permission_denied"},
    {base::ErrorKind::FailedPrecondition, "failed_precondition"},
    {base::ErrorKind::Unavailable, "unavailable"},
    {base::ErrorKind::Unauthenticated, "unauthenticated"},
    {base::ErrorKind::DataLoss, "data_loss"},
    {base::ErrorKind::Unsupported, "unsupported"},
    {base::ErrorKind::Cancelled, "cancelled"},
    {base::ErrorKind::DeadlineExceeded, "deadline_exceeded"},
    {base::ErrorKind::Internal, "internal"},
};

std::string line_of(base::Json document) {
    std::string text = document.dump();
    text.push_back('\n');
    return text;
}

}  // namespace

std::string_view error_code(base::ErrorKind kind) {
    for (const auto& [k, code] : kCodes) {
        if (k == kind) {
            return code;
        }
    }
    return "internal";
}

base::ErrorKind error_kind_from_code(std::string_view code) {
    for (const auto& [kind, c] : kCodes) {
        if (c == code) {
            return kind;
        }
    }
    return base::ErrorKind::Internal;
}

base::Result<Message> parse_message(std::string_view line) {
    // Requests may be large (a client environment, a big project), but one
    // document is still bounded so a broken peer cannot exhaust memory.
    base::Json document = TRY(
        base::Json::parse(line, base::JsonParseOptions{.max_bytes = 256u << 20, .max_depth = 64}));
    if (!document.is_object()) {
        return base::invalid_argument("protocol: a message must be a JSON object");
    }
    Message message;
    const base::Json* id = document.find("id");
    if (id == nullptr || !id->is_int()) {
        return base::invalid_argument("protocol: a message needs an integer `id`");
    }
    message.id = id->as_int();
    if (const base::Json* method = document.find("method")) {
        if (!method->is_string()) {
            return base::invalid_argument("protocol: `method` must be a string");
        }
        message.kind = Message::Kind::Request;
        message.method = method->as_string();
        if (const base::Json* params = document.find("params")) {
            message.body = *params;
        }
        if (message.body.is_null()) {
            message.body = base::Json::object();
        }
        if (!message.body.is_object()) {
            return base::invalid_argument("protocol: `params` must be an object");
        }
        return message;
    }
    if (const base::Json* event = document.find("event")) {
        message.kind = Message::Kind::Event;
        message.body = *event;
        return message;
    }
    if (const base::Json* result = document.find("result")) {
        message.kind = Message::Kind::Result;
        message.body = *result;
        return message;
    }
    if (const base::Json* error = document.find("error")) {
        message.kind = Message::Kind::Error;
        std::string code = "internal";
        std::string text = "unknown error";
        if (const base::Json* c = error->find("code"); c && c->is_string()) {
            code = c->as_string();
        }
        if (const base::Json* m = error->find("message"); m && m->is_string()) {
            text = m->as_string();
        }
        message.error = base::Error(error_kind_from_code(code), text);
        return message;
    }
    return base::invalid_argument(
        "protocol: a message needs `method`, `event`, `result` or `error`");
}

std::string encode_request(int64_t id, std::string_view method, const base::Json& params) {
    return line_of(base::Json::object({{"id", id}, {"method", method}, {"params", params}}));
}

std::string encode_event(int64_t id, const base::Json& event) {
    return line_of(base::Json::object({{"id", id}, {"event", event}}));
}

std::string encode_result(int64_t id, const base::Json& result) {
    return line_of(base::Json::object({{"id", id}, {"result", result}}));
}

std::string encode_error(int64_t id, const base::Error& error) {
    return line_of(base::Json::object(
        {{"id", id},
         {"error", base::Json::object({{"code", error_code(error.kind())},
                                       {"message", sanitize_utf8(error.to_string())}})}}));
}

const std::string& binary_build_id() {
    return internal::build_id();
}

std::string base64_encode(std::string_view bytes) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                     (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                     static_cast<unsigned char>(bytes[i + 2]);
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(kAlphabet[(v >> 6) & 63]);
        out.push_back(kAlphabet[v & 63]);
    }
    size_t rest = bytes.size() - i;
    if (rest > 0) {
        uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
        if (rest == 2) {
            v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
        }
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
        out.push_back('=');
    }
    return out;
}

base::Result<std::string> base64_decode(std::string_view text) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z')
            return c - 'A';
        if (c >= 'a' && c <= 'z')
            return c - 'a' + 26;
        if (c >= '0' && c <= '9')
            return c - '0' + 52;
        if (c == '+')
            return 62;
        if (c == '/')
            return 63;
        return -1;
    };
    if (text.size() % 4 != 0) {
        return base::invalid_argument("base64: length {} is not a multiple of 4", text.size());
    }
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (size_t i = 0; i < text.size(); i += 4) {
        int a = value(text[i]);
        int b = value(text[i + 1]);
        bool last = i + 4 == text.size();
        int c = (last && text[i + 2] == '=') ? 0 : value(text[i + 2]);
        int d = (last && text[i + 3] == '=') ? 0 : value(text[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0 || (text[i + 2] == '=' && text[i + 3] != '=')) {
            return base::invalid_argument("base64: bad character near offset {}", i);
        }
        uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;
        out.push_back(static_cast<char>((v >> 16) & 0xff));
        if (!(last && text[i + 2] == '=')) {
            out.push_back(static_cast<char>((v >> 8) & 0xff));
        }
        if (!(last && text[i + 3] == '=')) {
            out.push_back(static_cast<char>(v & 0xff));
        }
    }
    return out;
}

std::string sanitize_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        size_t length = 0;
        uint32_t min = 0;
        if (c < 0x80) {
            out.push_back(static_cast<char>(c));
            ++i;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            length = 2;
            min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            length = 3;
            min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            length = 4;
            min = 0x10000;
        }
        bool valid = length > 0 && i + length <= text.size();
        uint32_t code = length > 0 ? (c & (0xff >> (length + 1))) : 0;
        for (size_t k = 1; valid && k < length; ++k) {
            unsigned char next = static_cast<unsigned char>(text[i + k]);
            if ((next & 0xc0) != 0x80) {
                valid = false;
            }
            code = (code << 6) | (next & 0x3f);
        }
        if (valid && (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))) {
            valid = false;
        }
        if (valid) {
            out.append(text.substr(i, length));
            i += length;
        } else {
            out.append("\xef\xbf\xbd");
            ++i;
        }
    }
    return out;
}

}  // namespace locald::daemon
