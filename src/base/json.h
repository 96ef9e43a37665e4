// base/json.h — a small JSON value type, parsed and generated with yajl.
//
// Contract: `Json` is null, bool, int (int64), double, string (UTF-8, may
// contain NUL), array, or object. Object keys keep insertion order (so a
// parse→dump round trip keeps the document's order) and are unique: parse
// rejects duplicate keys (two parsers disagreeing on which one wins is a
// classic confusion attack). A number is an int when it is written without
// fraction/exponent and fits int64, else a double.
//
// Parsing untrusted text: `Json::parse(text, {.max_bytes, .max_depth})`;
// errors are InvalidArgument with line, column, byte offset and what yajl
// expected. Keep the raw bytes beside the parsed value when a digest is
// computed over them — dump() is not byte-identical to the input.
//
// The unchecked accessors (as_string() …) abort on a type mismatch: they are
// for values whose type was checked (is_string()) or that locald built
// itself. For input, use find() + is_*() or the get_*() helpers, which
// return an error naming the key and the expected type.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "base/error.h"

namespace locald::base {

struct JsonParseOptions {
    size_t max_bytes = 64 * 1024 * 1024;  // larger input is rejected before parsing
    size_t max_depth = 256;               // nesting of arrays/objects
};

class Json {
public:
    enum class Type { Null, Bool, Int, Double, String, Array, Object };
    using Array = std::vector<Json>;
    using Member = std::pair<std::string, Json>;
    using Object = std::vector<Member>;  // insertion order, unique keys

    Json() = default;  // null
    Json(std::nullptr_t) {}
    Json(bool value) : m_value(value) {}
    template <std::integral T>
    requires(!std::same_as<T, bool>) Json(T value) : m_value(static_cast<int64_t>(value)) {}
    template <std::floating_point T>
    Json(T value) : m_value(static_cast<double>(value)) {}
    Json(const char* value) : m_value(std::string(value)) {}
    Json(std::string value) : m_value(std::move(value)) {}
    Json(std::string_view value) : m_value(std::string(value)) {}
    Json(Array value) : m_value(std::move(value)) {}
    Json(Object value) : m_value(std::move(value)) {}

    static Json array(std::initializer_list<Json> items = {}) { return Json(Array(items)); }
    // Json::object({{"a", 1}, {"b", "x"}}); later duplicates replace earlier ones.
    static Json object(std::initializer_list<Member> members = {});

    static Result<Json> parse(std::string_view text, const JsonParseOptions& options = {});

    Type type() const { return static_cast<Type>(m_value.index()); }
    bool is_null() const { return type() == Type::Null; }
    bool is_bool() const { return type() == Type::Bool; }
    bool is_int() const { return type() == Type::Int; }
    bool is_double() const { return type() == Type::Double; }
    bool is_number() const { return is_int() || is_double(); }
    bool is_string() const { return type() == Type::String; }
    bool is_array() const { return type() == Type::Array; }
    bool is_object() const { return type() == Type::Object; }

    // Unchecked (abort on mismatch). as_double() also accepts an int.
    bool as_bool() const;
    int64_t as_int() const;
    double as_double() const;
    const std::string& as_string() const;
    const Array& as_array() const;
    Array& as_array();
    const Object& as_object() const;
    Object& as_object();

    // Object member lookup: nullptr if this is not an object or has no `key`.
    const Json* find(std::string_view key) const;
    Json* find(std::string_view key);
    bool contains(std::string_view key) const { return find(key) != nullptr; }

    // Object: the member `key`, inserted as null if missing; a null Json
    // becomes an empty object first. Aborts on other types.
    Json& operator[](std::string_view key);
    // Object: replaces `key` in place or appends it.
    void set(std::string key, Json value);
    // Object: removes `key`; false if it was not there.
    bool erase(std::string_view key);
    // Array: appends; a null Json becomes an empty array first.
    void push_back(Json value);
    // Array/object element count; 0 for scalars.
    size_t size() const;

    // Checked member access for parsing documents: NotFound if the key is
    // missing, InvalidArgument if it has the wrong type.
    Result<std::string> get_string(std::string_view key) const;
    Result<int64_t> get_int(std::string_view key) const;
    Result<double> get_double(std::string_view key) const;
    Result<bool> get_bool(std::string_view key) const;
    Result<const Json*> get_object(std::string_view key) const;
    Result<const Json*> get_array(std::string_view key) const;

    // Compact ("{"a":1}") or pretty (2-space indent) text. Strings are
    // escaped per RFC 8259 (", \, control characters as \n, \t … or \u00XX);
    // other well-formed UTF-8 passes through, ill-formed bytes become U+FFFD
    // (the output always parses). Non-finite doubles are written as null.
    std::string dump(bool pretty = false) const;

    friend bool operator==(const Json& a, const Json& b) { return a.m_value == b.m_value; }

    static std::string_view type_name(Type type);

private:
    std::variant<std::nullptr_t, bool, int64_t, double, std::string, Array, Object> m_value;
};

}  // namespace locald::base
