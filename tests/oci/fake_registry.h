// tests/oci/fake_registry.h — a tiny in-process HTTP/1.1 server for fault
// injection only (challenges, 429, 5xx, cut bodies, bad Range handling,
// wrong digests, cross-host redirects). Plain HTTP by default; given a
// certificate and key (see test_pki.h) it speaks HTTPS instead, so the rules
// that only apply to https registries (no downgrade redirects, https token
// realms) can be tested. Real registry behaviour is tested against Debian's
// docker-registry in tests/integration.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

struct ssl_ctx_st;

namespace locald::oci::testing {

// Server identity for HTTPS mode (PEM text).
struct FakeTls {
    std::string cert_pem;
    std::string key_pem;
};

struct FakeRequest {
    std::string method;
    std::string target;  // path + query
    std::string path;
    std::string query;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
    std::string header(const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? "" : it->second;
    }
};

struct FakeResponse {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    // Declare the full Content-Length but close after this many body bytes.
    std::optional<size_t> cut_after;

    FakeResponse& header(std::string name, std::string value) {
        headers.emplace_back(std::move(name), std::move(value));
        return *this;
    }
};

class FakeServer {
public:
    using Handler = std::function<FakeResponse(const FakeRequest&)>;

    explicit FakeServer(Handler handler, std::optional<FakeTls> tls = std::nullopt);
    ~FakeServer();
    FakeServer(const FakeServer&) = delete;
    FakeServer& operator=(const FakeServer&) = delete;

    int port() const { return m_port; }
    std::string host() const { return "127.0.0.1:" + std::to_string(m_port); }
    // `localhost:PORT`: the same server under another origin (the test
    // certificate names both), for cross-origin redirects.
    std::string localhost() const { return "localhost:" + std::to_string(m_port); }
    std::string scheme() const { return m_ssl_ctx ? "https" : "http"; }
    std::string url() const { return scheme() + "://" + host(); }

    std::vector<FakeRequest> requests() const;
    // Requests whose path starts with `prefix`.
    std::vector<FakeRequest> requests_to(const std::string& prefix) const;
    void set_handler(Handler handler);

private:
    void accept_loop();
    void serve(int fd);
    void close_connection(int fd);

    Handler m_handler;
    ssl_ctx_st* m_ssl_ctx = nullptr;  // non-null in HTTPS mode
    int m_listen_fd = -1;
    int m_port = 0;
    std::atomic<bool> m_stop{false};
    std::thread m_thread;
    mutable std::mutex m_mutex;
    std::vector<FakeRequest> m_requests;
    std::vector<std::thread> m_connections;
    std::vector<int> m_connection_fds;
};

// A response carrying a registry error body.
FakeResponse error_response(int status, const std::string& code = "UNKNOWN");

}  // namespace locald::oci::testing
