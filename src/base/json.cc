#include "base/json.h"

#include <yajl/yajl_parse.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <unordered_set>

#include "base/unique_handle.h"

namespace locald::base {

namespace {

[[noreturn]] void type_mismatch(const char* wanted, Json::Type got) {
    fmt::print(stderr, "locald: internal error: Json is {}, not {}\n", Json::type_name(got),
               wanted);
    std::abort();
}

// Builds a Json tree from yajl's SAX callbacks.
class Builder {
public:
    explicit Builder(size_t max_depth) : m_max_depth(max_depth) {}

    Json take_root() { return std::move(m_root); }
    const std::string& failure() const { return m_failure; }

    static int on_null(void* self) { return static_cast<Builder*>(self)->add(Json()); }
    static int on_boolean(void* self, int value) {
        return static_cast<Builder*>(self)->add(Json(value != 0));
    }
    static int on_number(void* self, const char* text, size_t length) {
        auto* builder = static_cast<Builder*>(self);
        std::string_view number(text, length);
        bool integral = number.find_first_of(".eE") == std::string_view::npos;
        if (integral) {
            int64_t value = 0;
            auto [end, error] = std::from_chars(text, text + length, value);
            if (error == std::errc() && end == text + length) {
                return builder->add(Json(value));
            }
            // Out of int64 range: keep it as a double, like most parsers.
        }
        double value = 0;
        auto [end, error] = std::from_chars(text, text + length, value);
        if (error == std::errc::result_out_of_range) {
            builder->m_failure = fmt::format("number `{}` is out of range", number);
            return 0;
        }
        if (error != std::errc() || end != text + length) {
            builder->m_failure = fmt::format("malformed number `{}`", number);
            return 0;
        }
        return builder->add(Json(value));
    }
    static int on_string(void* self, const unsigned char* text, size_t length) {
        return static_cast<Builder*>(self)->add(
            Json(std::string(reinterpret_cast<const char*>(text), length)));
    }
    static int on_start_map(void* self) {
        return static_cast<Builder*>(self)->open(Json(Json::Object{}));
    }
    static int on_map_key(void* self, const unsigned char* text, size_t length) {
        auto* builder = static_cast<Builder*>(self);
        Frame& frame = builder->m_stack.back();
        std::string key(reinterpret_cast<const char*>(text), length);
        if (!frame.keys.insert(key).second) {
            builder->m_failure = fmt::format("duplicate key \"{}\"", key);
            return 0;
        }
        frame.key = std::move(key);
        return 1;
    }
    static int on_end_container(void* self) {
        static_cast<Builder*>(self)->m_stack.pop_back();
        return 1;
    }
    static int on_start_array(void* self) {
        return static_cast<Builder*>(self)->open(Json(Json::Array{}));
    }

private:
    struct Frame {
        Json* node;
        std::string key;                       // pending member name (objects)
        std::unordered_set<std::string> keys;  // seen member names (objects)
    };

    Json* add_node(Json value) {
        if (m_stack.empty()) {
            m_root = std::move(value);
            return &m_root;
        }
        Frame& frame = m_stack.back();
        if (frame.node->is_array()) {
            Json::Array& array = frame.node->as_array();
            array.push_back(std::move(value));
            return &array.back();
        }
        Json::Object& object = frame.node->as_object();
        object.emplace_back(std::move(frame.key), std::move(value));
        return &object.back().second;
    }

    int add(Json value) {
        add_node(std::move(value));
        return 1;
    }

    int open(Json container) {
        if (m_stack.size() >= m_max_depth) {
            m_failure = fmt::format("nesting deeper than {} levels", m_max_depth);
            return 0;
        }
        // Pointers into parents stay valid: a parent is only appended to
        // after this child is closed.
        Json* node = add_node(std::move(container));
        m_stack.push_back(Frame{node, {}, {}});
        return 1;
    }

    size_t m_max_depth;
    Json m_root;
    std::vector<Frame> m_stack;
    std::string m_failure;
};

void free_yajl(yajl_handle handle) {
    yajl_free(handle);
}

// Line and column (1-based) of byte `offset` in `text`.
std::pair<size_t, size_t> line_column(std::string_view text, size_t offset) {
    size_t line = 1;
    size_t column = 1;
    for (size_t i = 0; i < offset && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    return {line, column};
}

// yajl's non-verbose message is "parse error: <what it expected>\n".
std::string yajl_message(yajl_handle handle, std::string_view text) {
    unsigned char* raw =
        yajl_get_error(handle, 0, reinterpret_cast<const unsigned char*>(text.data()), text.size());
    std::string message = raw != nullptr ? reinterpret_cast<const char*>(raw) : "malformed JSON";
    if (raw != nullptr) {
        yajl_free_error(handle, raw);
    }
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
        message.pop_back();
    }
    return message;
}

// Length of the well-formed UTF-8 sequence (RFC 3629: no overlong forms,
// no surrogates, at most U+10FFFF) at the start of `text`, or 0.
size_t utf8_sequence_length(std::string_view text) {
    auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
    auto continuation = [&](size_t i) { return i < text.size() && (byte(i) & 0xC0) == 0x80; };
    unsigned char lead = byte(0);
    if (lead >= 0xC2 && lead <= 0xDF) {
        return continuation(1) ? 2 : 0;
    }
    if (lead >= 0xE0 && lead <= 0xEF) {
        if (!continuation(1) || !continuation(2)) {
            return 0;
        }
        if ((lead == 0xE0 && byte(1) < 0xA0) || (lead == 0xED && byte(1) > 0x9F)) {
            return 0;  // overlong, or a UTF-16 surrogate
        }
        return 3;
    }
    if (lead >= 0xF0 && lead <= 0xF4) {
        if (!continuation(1) || !continuation(2) || !continuation(3)) {
            return 0;
        }
        if ((lead == 0xF0 && byte(1) < 0x90) || (lead == 0xF4 && byte(1) > 0x8F)) {
            return 0;  // overlong, or beyond U+10FFFF
        }
        return 4;
    }
    return 0;
}

void escape_string(std::string& out, std::string_view text) {
    out += '"';
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (static_cast<unsigned char>(c) >= 0x80) {
            // Well-formed UTF-8 passes through. Anything else (a string
            // built from bytes that are not UTF-8, e.g. a Procfile command)
            // becomes U+FFFD, as Go's encoding/json does: dump() must
            // always be valid JSON that parse() accepts.
            size_t length = utf8_sequence_length(text.substr(i));
            if (length == 0) {
                out += "\xEF\xBF\xBD";
            } else {
                out.append(text.substr(i, length));
                i += length - 1;
            }
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
                    fmt::format_to(std::back_inserter(out), "\\u{:04x}",
                                   static_cast<unsigned char>(c));
                } else {
                    out += c;
                }
        }
    }
    out += '"';
}

void newline(std::string& out, bool pretty, size_t depth) {
    if (pretty) {
        out += '\n';
        out.append(depth * 2, ' ');
    }
}

void write_value(std::string& out, const Json& value, bool pretty, size_t depth) {
    switch (value.type()) {
        case Json::Type::Null:
            out += "null";
            return;
        case Json::Type::Bool:
            out += value.as_bool() ? "true" : "false";
            return;
        case Json::Type::Int:
            fmt::format_to(std::back_inserter(out), "{}", value.as_int());
            return;
        case Json::Type::Double: {
            double number = value.as_double();
            if (!std::isfinite(number)) {
                out += "null";  // JSON has no NaN/Infinity
                return;
            }
            // Shortest text that parses back to the same double; keep a
            // fraction so it parses back as a double, not an int.
            std::string text = fmt::format("{}", number);
            if (text.find_first_of(".e") == std::string::npos) {
                text += ".0";
            }
            out += text;
            return;
        }
        case Json::Type::String:
            escape_string(out, value.as_string());
            return;
        case Json::Type::Array: {
            const Json::Array& array = value.as_array();
            out += '[';
            for (size_t i = 0; i < array.size(); ++i) {
                if (i > 0) {
                    out += ',';
                }
                newline(out, pretty, depth + 1);
                write_value(out, array[i], pretty, depth + 1);
            }
            if (!array.empty()) {
                newline(out, pretty, depth);
            }
            out += ']';
            return;
        }
        case Json::Type::Object: {
            const Json::Object& object = value.as_object();
            out += '{';
            for (size_t i = 0; i < object.size(); ++i) {
                if (i > 0) {
                    out += ',';
                }
                newline(out, pretty, depth + 1);
                escape_string(out, object[i].first);
                out += pretty ? ": " : ":";
                write_value(out, object[i].second, pretty, depth + 1);
            }
            if (!object.empty()) {
                newline(out, pretty, depth);
            }
            out += '}';
            return;
        }
    }
}

}  // namespace

Json Json::object(std::initializer_list<Member> members) {
    Json result(Object{});
    for (const Member& member : members) {
        result.set(member.first, member.second);
    }
    return result;
}

Result<Json> Json::parse(std::string_view text, const JsonParseOptions& options) {
    if (text.size() > options.max_bytes) {
        return invalid_argument("JSON document of {} bytes exceeds the {}-byte limit", text.size(),
                                options.max_bytes);
    }
    static const yajl_callbacks kCallbacks = {
        &Builder::on_null,
        &Builder::on_boolean,
        nullptr,
        nullptr,
        &Builder::on_number,
        &Builder::on_string,
        &Builder::on_start_map,
        &Builder::on_map_key,
        &Builder::on_end_container,
        &Builder::on_start_array,
        &Builder::on_end_container,
    };
    Builder builder(options.max_depth);
    UniqueHandle<yajl_handle, free_yajl> handle(yajl_alloc(&kCallbacks, nullptr, &builder));
    if (!handle) {
        return internal_error("allocating a JSON parser");
    }
    const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
    yajl_status status = yajl_parse(handle.get(), bytes, text.size());
    if (status == yajl_status_ok) {
        status = yajl_complete_parse(handle.get());
    }
    if (status != yajl_status_ok) {
        size_t offset = yajl_get_bytes_consumed(handle.get());
        std::string what = status == yajl_status_client_canceled ? builder.failure()
                                                                 : yajl_message(handle.get(), text);
        auto [line, column] = line_column(text, offset);
        return invalid_argument("malformed JSON at line {}, column {} (byte {}): {}", line, column,
                                offset, what);
    }
    return builder.take_root();
}

std::string_view Json::type_name(Type type) {
    switch (type) {
        case Type::Null:
            return "null";
        case Type::Bool:
            return "a boolean";
        case Type::Int:
            return "an integer";
        case Type::Double:
            return "a number";
        case Type::String:
            return "a string";
        case Type::Array:
            return "an array";
        case Type::Object:
            return "an object";
    }
    return "unknown";
}

bool Json::as_bool() const {
    if (!is_bool()) {
        type_mismatch("a boolean", type());
    }
    return std::get<bool>(m_value);
}

int64_t Json::as_int() const {
    if (!is_int()) {
        type_mismatch("an integer", type());
    }
    return std::get<int64_t>(m_value);
}

double Json::as_double() const {
    if (is_int()) {
        return static_cast<double>(std::get<int64_t>(m_value));
    }
    if (!is_double()) {
        type_mismatch("a number", type());
    }
    return std::get<double>(m_value);
}

const std::string& Json::as_string() const {
    if (!is_string()) {
        type_mismatch("a string", type());
    }
    return std::get<std::string>(m_value);
}

const Json::Array& Json::as_array() const {
    if (!is_array()) {
        type_mismatch("an array", type());
    }
    return std::get<Array>(m_value);
}

Json::Array& Json::as_array() {
    if (!is_array()) {
        type_mismatch("an array", type());
    }
    return std::get<Array>(m_value);
}

const Json::Object& Json::as_object() const {
    if (!is_object()) {
        type_mismatch("an object", type());
    }
    return std::get<Object>(m_value);
}

Json::Object& Json::as_object() {
    if (!is_object()) {
        type_mismatch("an object", type());
    }
    return std::get<Object>(m_value);
}

const Json* Json::find(std::string_view key) const {
    if (!is_object()) {
        return nullptr;
    }
    for (const Member& member : std::get<Object>(m_value)) {
        if (member.first == key) {
            return &member.second;
        }
    }
    return nullptr;
}

Json* Json::find(std::string_view key) {
    return const_cast<Json*>(std::as_const(*this).find(key));
}

Json& Json::operator[](std::string_view key) {
    if (is_null()) {
        m_value = Object{};
    }
    if (Json* existing = find(key)) {
        return *existing;
    }
    Object& object = as_object();
    object.emplace_back(std::string(key), Json());
    return object.back().second;
}

void Json::set(std::string key, Json value) {
    if (is_null()) {
        m_value = Object{};
    }
    if (Json* existing = find(key)) {
        *existing = std::move(value);
        return;
    }
    as_object().emplace_back(std::move(key), std::move(value));
}

bool Json::erase(std::string_view key) {
    if (!is_object()) {
        return false;
    }
    Object& object = as_object();
    for (auto it = object.begin(); it != object.end(); ++it) {
        if (it->first == key) {
            object.erase(it);
            return true;
        }
    }
    return false;
}

void Json::push_back(Json value) {
    if (is_null()) {
        m_value = Array{};
    }
    as_array().push_back(std::move(value));
}

size_t Json::size() const {
    if (is_array()) {
        return std::get<Array>(m_value).size();
    }
    if (is_object()) {
        return std::get<Object>(m_value).size();
    }
    return 0;
}

namespace {

Result<const Json*> member_of_type(const Json& json, std::string_view key, Json::Type wanted) {
    if (!json.is_object()) {
        return invalid_argument("expected an object with \"{}\", got {}", key,
                                Json::type_name(json.type()));
    }
    const Json* value = json.find(key);
    if (value == nullptr) {
        return not_found("missing \"{}\"", key);
    }
    bool matches = value->type() == wanted ||
                   (wanted == Json::Type::Double && value->type() == Json::Type::Int);
    if (!matches) {
        return invalid_argument("\"{}\": expected {}, got {}", key, Json::type_name(wanted),
                                Json::type_name(value->type()));
    }
    return value;
}

}  // namespace

Result<std::string> Json::get_string(std::string_view key) const {
    const Json* value = TRY(member_of_type(*this, key, Type::String));
    return value->as_string();
}

Result<int64_t> Json::get_int(std::string_view key) const {
    const Json* value = TRY(member_of_type(*this, key, Type::Int));
    return value->as_int();
}

Result<double> Json::get_double(std::string_view key) const {
    const Json* value = TRY(member_of_type(*this, key, Type::Double));
    return value->as_double();
}

Result<bool> Json::get_bool(std::string_view key) const {
    const Json* value = TRY(member_of_type(*this, key, Type::Bool));
    return value->as_bool();
}

Result<const Json*> Json::get_object(std::string_view key) const {
    return member_of_type(*this, key, Type::Object);
}

Result<const Json*> Json::get_array(std::string_view key) const {
    return member_of_type(*this, key, Type::Array);
}

std::string Json::dump(bool pretty) const {
    std::string out;
    write_value(out, *this, pretty, 0);
    return out;
}

}  // namespace locald::base
