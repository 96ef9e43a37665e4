// oci/http.h — one HTTP exchange over libcurl, nothing registry-specific.
//
// Contract: `HttpClient` performs single requests (no redirects followed: the
// registry transport follows them itself so it can drop credentials on a host
// change). Connections, DNS and TLS sessions are shared between every thread
// using the same client (a CURLSH), so parallel layer downloads reuse
// connections; HTTP/2 is negotiated over TLS, HTTP/1.1 otherwise. Transport
// failures are not `Error`s but a `TransportError` in the response, because
// the caller decides what is retryable. libcurl stays private to this file.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace locald::oci {

// Header list with case-insensitive lookup; names are stored lower-case.
class HttpHeaders {
public:
    void add(std::string_view name, std::string_view value);
    // The first value of `name`, if present.
    std::optional<std::string> get(std::string_view name) const;
    std::vector<std::string> get_all(std::string_view name) const;
    const std::vector<std::pair<std::string, std::string>>& entries() const { return m_entries; }
    void clear() { m_entries.clear(); }
    // Removes every value of `name`.
    void remove(std::string_view name);
    // Replaces every value of `name` with one.
    void set(std::string_view name, std::string_view value);

private:
    std::vector<std::pair<std::string, std::string>> m_entries;
};

struct TlsOptions {
    bool verify = true;       // false only for `insecure = true` registries
    std::string ca_file;      // extra CA bundle (certs.d/<host>/ca.crt), empty for none
    std::string client_cert;  // PEM client certificate, empty for none
    std::string client_key;   // PEM client key
};

// Supplies a request body piece by piece (for uploads that do not fit in
// memory). Returns the number of bytes written into `buffer` (0 = end).
using BodyReader = std::function<base::Result<size_t>(char* buffer, size_t size)>;

// Receives a 2xx response body as it arrives, with the status and headers
// (complete by then) so the receiver can validate them (Range, length) before
// taking the first byte. Returning an error aborts the transfer (reported as
// TransportError::Aborted with that error kept).
using BodySink = std::function<base::Result<void>(std::string_view data, long status,
                                                  const HttpHeaders& headers)>;

struct HttpRequest {
    std::string method = "GET";
    std::string url;
    HttpHeaders headers;
    std::string body;   // used when `reader` is empty
    BodyReader reader;  // streamed body of `reader_size` bytes
    uint64_t reader_size = 0;
    TlsOptions tls;
    uint64_t max_buffered_body = 4 << 20;  // cap when the body is buffered (no sink / error body)
    long connect_timeout_ms = 15000;
    // A transfer is abandoned when slower than 1 KiB/s for this long.
    long stall_timeout_s = 30;
};

enum class TransportError {
    None,
    Network,   // refused, reset, DNS, truncated body: worth retrying
    Timeout,   // stalled or connect timeout: worth retrying
    Tls,       // certificate or handshake failure: not retryable
    TooLarge,  // buffered body over `max_buffered_body`
    Aborted,   // the sink or reader returned an error (see `abort_error`)
    Other,     // a libcurl failure that is none of the above
};

struct HttpResponse {
    long status = 0;
    HttpHeaders headers;
    std::string body;  // buffered body (whole body without a sink; error bodies with one)
    uint64_t body_bytes_streamed = 0;
    TransportError transport_error = TransportError::None;
    std::string transport_message;           // libcurl's explanation
    std::optional<base::Error> abort_error;  // why the sink/reader aborted
    bool ok() const { return transport_error == TransportError::None; }
};

class HttpClient {
public:
    // `user_agent` is sent with every request.
    static base::Result<std::shared_ptr<HttpClient>> create(std::string user_agent);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // Performs `request`. With a `sink`, a 2xx body goes to the sink and other
    // bodies are buffered (capped); without one every body is buffered.
    // Thread-safe: each call uses its own easy handle, sharing connections.
    base::Result<HttpResponse> perform(const HttpRequest& request, const BodySink& sink = {});

    struct Shared;

private:
    HttpClient() = default;
    std::string m_user_agent;
    std::unique_ptr<Shared> m_shared;
};

// Splits `url` into scheme, host (lower-case, IPv6 without brackets), port
// (defaulted from the scheme). Used to compare origins.
struct UrlOrigin {
    std::string scheme;
    std::string host;
    int port = 0;
    bool operator==(const UrlOrigin&) const = default;
};
base::Result<UrlOrigin> url_origin(std::string_view url);
// Resolves a Location header against the URL it came from.
base::Result<std::string> resolve_url(std::string_view base, std::string_view location);
// Percent-encodes a query value.
std::string url_escape(std::string_view value);

}  // namespace locald::oci
