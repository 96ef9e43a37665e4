#include "fake_registry.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace locald::oci::testing {

namespace {

std::string lower(std::string text) {
    for (auto& c : text) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return text;
}

// One accepted connection, plain or TLS.
struct Connection {
    int fd = -1;
    SSL* ssl = nullptr;

    ssize_t recv(char* buffer, size_t size) {
        if (ssl) {
            int n = SSL_read(ssl, buffer, static_cast<int>(size));
            return n > 0 ? n : -1;
        }
        return ::recv(fd, buffer, size, 0);
    }
    ssize_t send(const char* data, size_t size) {
        if (ssl) {
            int n = SSL_write(ssl, data, static_cast<int>(std::min<size_t>(size, 1 << 20)));
            return n > 0 ? n : -1;
        }
        return ::send(fd, data, size, MSG_NOSIGNAL);
    }
};

bool send_all(Connection& connection, const char* data, size_t size) {
    while (size > 0) {
        ssize_t n = connection.send(data, size);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return false;
        }
        data += n;
        size -= static_cast<size_t>(n);
    }
    return true;
}

const char* reason(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 201:
            return "Created";
        case 202:
            return "Accepted";
        case 204:
            return "No Content";
        case 206:
            return "Partial Content";
        case 307:
            return "Temporary Redirect";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 416:
            return "Range Not Satisfiable";
        case 429:
            return "Too Many Requests";
        case 500:
            return "Internal Server Error";
        case 503:
            return "Service Unavailable";
        default:
            return "Status";
    }
}

}  // namespace

FakeResponse error_response(int status, const std::string& code) {
    FakeResponse response;
    response.status = status;
    response.header("Content-Type", "application/json");
    response.body = "{\"errors\":[{\"code\":\"" + code + "\",\"message\":\"fake " + code + "\"}]}";
    return response;
}

static SSL_CTX* make_server_context(const FakeTls& tls) {
    SSL_CTX* context = SSL_CTX_new(TLS_server_method());
    BIO* cert_bio = BIO_new_mem_buf(tls.cert_pem.data(), static_cast<int>(tls.cert_pem.size()));
    BIO* key_bio = BIO_new_mem_buf(tls.key_pem.data(), static_cast<int>(tls.key_pem.size()));
    X509* cert = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
    EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
    if (!context || !cert || !key || SSL_CTX_use_certificate(context, cert) != 1 ||
        SSL_CTX_use_PrivateKey(context, key) != 1) {
        ERR_print_errors_fp(stderr);
        std::abort();  // a TLS fake without a usable identity cannot test anything
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    BIO_free(cert_bio);
    BIO_free(key_bio);
    return context;
}

FakeServer::FakeServer(Handler handler, std::optional<FakeTls> tls)
    : m_handler(std::move(handler)) {
    if (tls) {
        // SSL_write has no MSG_NOSIGNAL: a client hanging up mid-response
        // must not kill the test binary.
        std::signal(SIGPIPE, SIG_IGN);
        m_ssl_ctx = make_server_context(*tls);
    }
    m_listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(m_listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    ::bind(m_listen_fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    ::listen(m_listen_fd, 64);
    socklen_t length = sizeof(address);
    ::getsockname(m_listen_fd, reinterpret_cast<sockaddr*>(&address), &length);
    m_port = ntohs(address.sin_port);
    m_thread = std::thread([this] { accept_loop(); });
}

FakeServer::~FakeServer() {
    m_stop = true;
    ::shutdown(m_listen_fd, SHUT_RDWR);
    m_thread.join();
    std::vector<std::thread> connections;
    {
        std::lock_guard lock(m_mutex);
        for (int fd : m_connection_fds) {
            ::shutdown(fd, SHUT_RDWR);
        }
        connections = std::move(m_connections);
    }
    for (auto& thread : connections) {
        thread.join();
    }
    ::close(m_listen_fd);
    if (m_ssl_ctx) {
        SSL_CTX_free(m_ssl_ctx);
    }
}

void FakeServer::set_handler(Handler handler) {
    std::lock_guard lock(m_mutex);
    m_handler = std::move(handler);
}

std::vector<FakeRequest> FakeServer::requests() const {
    std::lock_guard lock(m_mutex);
    return m_requests;
}

std::vector<FakeRequest> FakeServer::requests_to(const std::string& prefix) const {
    std::vector<FakeRequest> out;
    for (auto& request : requests()) {
        if (request.path.rfind(prefix, 0) == 0) {
            out.push_back(request);
        }
    }
    return out;
}

void FakeServer::accept_loop() {
    while (!m_stop) {
        pollfd pfd{m_listen_fd, POLLIN, 0};
        if (::poll(&pfd, 1, 100) <= 0) {
            continue;
        }
        int fd = ::accept4(m_listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        std::lock_guard lock(m_mutex);
        m_connection_fds.push_back(fd);
        m_connections.emplace_back([this, fd] { serve(fd); });
    }
}

void FakeServer::close_connection(int fd) {
    {
        std::lock_guard lock(m_mutex);
        std::erase(m_connection_fds, fd);
    }
    ::close(fd);
}

void FakeServer::serve(int fd) {
    Connection connection{fd, nullptr};
    if (m_ssl_ctx) {
        connection.ssl = SSL_new(m_ssl_ctx);
        SSL_set_fd(connection.ssl, fd);
        if (SSL_accept(connection.ssl) != 1) {
            // The client refused our certificate, or spoke plain HTTP.
            SSL_free(connection.ssl);
            close_connection(fd);
            return;
        }
    }
    auto finish = [&] {
        if (connection.ssl) {
            SSL_free(connection.ssl);
        }
        close_connection(fd);
    };
    std::string buffer;
    char chunk[65536];
    while (!m_stop) {
        // Read the request head.
        size_t head_end;
        while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
            ssize_t n = connection.recv(chunk, sizeof(chunk));
            if (n <= 0) {
                finish();
                return;
            }
            buffer.append(chunk, static_cast<size_t>(n));
            if (!connection.ssl && !buffer.empty() && buffer[0] == 0x16) {
                // A TLS ClientHello to a plain HTTP server.
                finish();
                return;
            }
        }
        std::string head = buffer.substr(0, head_end);
        buffer.erase(0, head_end + 4);
        FakeRequest request;
        size_t line_end = head.find("\r\n");
        std::string request_line = head.substr(0, line_end);
        size_t space1 = request_line.find(' ');
        size_t space2 = request_line.find(' ', space1 + 1);
        request.method = request_line.substr(0, space1);
        request.target = request_line.substr(space1 + 1, space2 - space1 - 1);
        size_t question = request.target.find('?');
        request.path = request.target.substr(0, question);
        request.query = question == std::string::npos ? "" : request.target.substr(question + 1);
        size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
        while (pos < head.size()) {
            size_t end = head.find("\r\n", pos);
            if (end == std::string::npos) {
                end = head.size();
            }
            std::string line = head.substr(pos, end - pos);
            size_t colon = line.find(':');
            if (colon != std::string::npos) {
                std::string value = line.substr(colon + 1);
                value.erase(0, value.find_first_not_of(' '));
                request.headers[lower(line.substr(0, colon))] = value;
            }
            pos = end + 2;
        }
        size_t length = 0;
        if (auto it = request.headers.find("content-length"); it != request.headers.end()) {
            length = std::stoul(it->second);
        }
        while (buffer.size() < length) {
            ssize_t n = connection.recv(chunk, sizeof(chunk));
            if (n <= 0) {
                finish();
                return;
            }
            buffer.append(chunk, static_cast<size_t>(n));
        }
        request.body = buffer.substr(0, length);
        buffer.erase(0, length);

        Handler handler;
        {
            std::lock_guard lock(m_mutex);
            m_requests.push_back(request);
            handler = m_handler;
        }
        FakeResponse response = handler(request);
        std::string out =
            "HTTP/1.1 " + std::to_string(response.status) + " " + reason(response.status) + "\r\n";
        bool has_length = false;
        for (const auto& [name, value] : response.headers) {
            if (lower(name) == "content-length") {
                has_length = true;
            }
            out += name + ": " + value + "\r\n";
        }
        if (!has_length) {
            out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
        }
        out += "\r\n";
        if (request.method != "HEAD") {
            out += response.body.substr(0, response.cut_after.value_or(response.body.size()));
        }
        if (!send_all(connection, out.data(), out.size()) || response.cut_after) {
            ::shutdown(fd, SHUT_RDWR);
            finish();
            return;
        }
    }
    finish();
}

}  // namespace locald::oci::testing
