// base/error.h — the one error type of locald.
//
// Contract: no locald code throws. A fallible function returns
// `[[nodiscard]] Result<T>`; `TRY(expr)` propagates the error, `.context()`
// says what was being done (once per module boundary). Callers branch on
// `ErrorKind`, never on message text; the CLI maps kinds to exit codes.
// Depends on nothing but the standard library and fmt.
#pragma once

#include <fmt/format.h>

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace locald::base {

enum class ErrorKind {
    InvalidArgument,     // bad input from the user or a file: config, reference, flag
    NotFound,            // a file, image, service, blob that does not exist
    AlreadyExists,       // a name or file that must be new
    PermissionDenied,    // the kernel or a peer said no (EPERM/EACCES, peer uid)
    FailedPrecondition,  // the system is not in the state the operation needs
    Unavailable,         // transient: network, registry, daemon not answering
    Unauthenticated,     // a registry wants credentials we do not have or that failed
    DataLoss,            // a digest or size mismatch, a corrupt or truncated stream
    Unsupported,         // a feature of the input or the kernel locald does not handle
    Cancelled,           // the user or a signal stopped the operation
    DeadlineExceeded,    // a timeout passed
    Internal,            // a bug or an unexpected system failure
};

std::string_view to_string(ErrorKind kind);

// The kind that best describes an errno value (ENOENT → NotFound, …).
ErrorKind kind_from_errno(int err);

class Error {
public:
    Error(ErrorKind kind, std::string message, int err = 0)
        : m_kind(kind), m_errno(err), m_message(std::move(message)) {}

    // `what` failed with `err` (usually errno captured right after the call).
    static Error from_errno(int err, std::string what) {
        return Error(kind_from_errno(err), std::move(what), err);
    }

    ErrorKind kind() const { return m_kind; }
    int errno_value() const { return m_errno; }
    const std::string& message() const { return m_message; }

    // Prepends what was being done: "pulling `alpine`: <message>".
    Error& context(std::string_view what) & {
        m_message = fmt::format("{}: {}", what, m_message);
        return *this;
    }
    Error&& context(std::string_view what) && { return std::move(context(what)); }

    // The message, plus strerror(errno) when an errno is attached.
    std::string to_string() const;

private:
    ErrorKind m_kind;
    int m_errno;
    std::string m_message;
};

// Shorthands that read like the failure they describe:
//   return base::invalid_argument("{}:{}: expected a duration", file, line);
#define LOCALD_ERROR_FACTORY(name, kind)                                                 \
    template <typename... Args>                                                          \
    Error name(fmt::format_string<Args...> format, Args&&... args) {                     \
        return Error(ErrorKind::kind, fmt::format(format, std::forward<Args>(args)...)); \
    }
LOCALD_ERROR_FACTORY(invalid_argument, InvalidArgument)
LOCALD_ERROR_FACTORY(not_found, NotFound)
LOCALD_ERROR_FACTORY(already_exists, AlreadyExists)
LOCALD_ERROR_FACTORY(permission_denied, PermissionDenied)
LOCALD_ERROR_FACTORY(failed_precondition, FailedPrecondition)
LOCALD_ERROR_FACTORY(unavailable, Unavailable)
LOCALD_ERROR_FACTORY(unauthenticated, Unauthenticated)
LOCALD_ERROR_FACTORY(data_loss, DataLoss)
LOCALD_ERROR_FACTORY(unsupported, Unsupported)
LOCALD_ERROR_FACTORY(cancelled, Cancelled)
LOCALD_ERROR_FACTORY(deadline_exceeded, DeadlineExceeded)
LOCALD_ERROR_FACTORY(internal_error, Internal)
#undef LOCALD_ERROR_FACTORY

// errno captured now, with a formatted description of what failed.
template <typename... Args>
Error errno_error(fmt::format_string<Args...> format, Args&&... args) {
    int err = errno;
    return Error::from_errno(err, fmt::format(format, std::forward<Args>(args)...));
}

// Result<T>: a T or an Error, spelled like std::expected (which g++ 12 lacks).
template <typename T>
class [[nodiscard]] Result {
public:
    using ValueType = T;

    Result(T value) : m_storage(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : m_storage(std::in_place_index<1>, std::move(error)) {}
    template <typename U>
    requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, T> &&
             !std::is_same_v<std::decay_t<U>, Error> && !std::is_same_v<std::decay_t<U>, Result>)
        Result(U&& value)
        : m_storage(std::in_place_index<0>, T(std::forward<U>(value))) {}

    bool has_value() const { return m_storage.index() == 0; }
    explicit operator bool() const { return has_value(); }

    T& value() & { return std::get<0>(m_storage); }
    const T& value() const& { return std::get<0>(m_storage); }
    T&& value() && { return std::get<0>(std::move(m_storage)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    T release_value() { return std::get<0>(std::move(m_storage)); }
    T value_or(T fallback) && { return has_value() ? release_value() : std::move(fallback); }

    const Error& error() const& { return std::get<1>(m_storage); }
    Error& error() & { return std::get<1>(m_storage); }
    Error release_error() { return std::get<1>(std::move(m_storage)); }

    Result&& context(std::string_view what) && {
        if (!has_value()) {
            error().context(what);
        }
        return std::move(*this);
    }

private:
    std::variant<T, Error> m_storage;
};

template <>
class [[nodiscard]] Result<void> {
public:
    using ValueType = void;

    Result() = default;
    Result(Error error) : m_error(std::move(error)) {}

    bool has_value() const { return !m_error.has_value(); }
    explicit operator bool() const { return has_value(); }
    void value() const {}
    void release_value() {}

    const Error& error() const& { return *m_error; }
    Error& error() & { return *m_error; }
    Error release_error() { return std::move(*m_error); }

    Result&& context(std::string_view what) && {
        if (m_error) {
            m_error->context(what);
        }
        return std::move(*this);
    }

private:
    std::optional<Error> m_error;
};

// Success for Result<void>: `return base::ok();`
inline Result<void> ok() {
    return {};
}

}  // namespace locald::base

// Evaluates a Result; on error returns the Error from the enclosing function,
// otherwise yields the value. Uses a GNU statement expression (g++ and clang).
#define TRY(expression)                                \
    ({                                                 \
        auto _locald_try_result = (expression);        \
        if (!_locald_try_result) [[unlikely]]          \
            return _locald_try_result.release_error(); \
        _locald_try_result.release_value();            \
    })
