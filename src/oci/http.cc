#include "oci/http.h"

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <mutex>

namespace locald::oci {

namespace {

std::string lower(std::string_view text) {
    std::string out(text);
    for (auto& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' ||
                             text.back() == '\n')) {
        text.remove_suffix(1);
    }
    return text;
}

std::once_flag g_global_init;

struct Transfer {
    const HttpRequest* request = nullptr;
    const BodySink* sink = nullptr;
    CURL* easy = nullptr;
    HttpResponse* response = nullptr;
    uint64_t read_offset = 0;
    bool too_large = false;
};

size_t on_header(char* data, size_t size, size_t count, void* user) {
    auto* transfer = static_cast<Transfer*>(user);
    std::string_view line(data, size * count);
    if (line.starts_with("HTTP/")) {
        // A new response (after 100-continue or on a new attempt): forget the old headers.
        transfer->response->headers.clear();
        return line.size();
    }
    auto colon = line.find(':');
    if (colon != std::string_view::npos) {
        transfer->response->headers.add(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
    }
    return line.size();
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
    auto* transfer = static_cast<Transfer*>(user);
    size_t bytes = size * count;
    long status = 0;
    curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &status);
    if (transfer->sink && *transfer->sink && status >= 200 && status < 300) {
        auto result =
            (*transfer->sink)(std::string_view(data, bytes), status, transfer->response->headers);
        if (!result) {
            transfer->response->abort_error = result.release_error();
            return CURL_WRITEFUNC_ERROR;
        }
        transfer->response->body_bytes_streamed += bytes;
        return bytes;
    }
    if (transfer->response->body.size() + bytes > transfer->request->max_buffered_body) {
        transfer->too_large = true;
        return CURL_WRITEFUNC_ERROR;
    }
    transfer->response->body.append(data, bytes);
    return bytes;
}

size_t on_read(char* buffer, size_t size, size_t count, void* user) {
    auto* transfer = static_cast<Transfer*>(user);
    const HttpRequest& request = *transfer->request;
    size_t room = size * count;
    if (request.reader) {
        auto result = request.reader(buffer, room);
        if (!result) {
            transfer->response->abort_error = result.release_error();
            return CURL_READFUNC_ABORT;
        }
        return result.value();
    }
    size_t left = request.body.size() - transfer->read_offset;
    size_t take = std::min(left, room);
    std::copy_n(request.body.data() + transfer->read_offset, take, buffer);
    transfer->read_offset += take;
    return take;
}

CURLcode add_extra_ca(CURL*, void* ssl_ctx, void* user) {
    const auto* path = static_cast<const std::string*>(user);
    X509_STORE* store = SSL_CTX_get_cert_store(static_cast<SSL_CTX*>(ssl_ctx));
    if (!store || X509_STORE_load_file(store, path->c_str()) != 1) {
        return CURLE_SSL_CACERT_BADFILE;
    }
    return CURLE_OK;
}

TransportError classify(CURLcode code) {
    switch (code) {
        case CURLE_OK:
            return TransportError::None;
        case CURLE_OPERATION_TIMEDOUT:
            return TransportError::Timeout;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_CONNECT:
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_WEIRD_SERVER_REPLY:
            return TransportError::Network;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_SHUTDOWN_FAILED:
            return TransportError::Tls;
        case CURLE_WRITE_ERROR:
        case CURLE_ABORTED_BY_CALLBACK:
        case CURLE_READ_ERROR:
            return TransportError::Aborted;
        default:
            return TransportError::Other;
    }
}

}  // namespace

void HttpHeaders::add(std::string_view name, std::string_view value) {
    m_entries.emplace_back(lower(name), std::string(value));
}

void HttpHeaders::remove(std::string_view name) {
    std::string key = lower(name);
    std::erase_if(m_entries, [&](const auto& entry) { return entry.first == key; });
}

void HttpHeaders::set(std::string_view name, std::string_view value) {
    remove(name);
    add(name, value);
}

std::optional<std::string> HttpHeaders::get(std::string_view name) const {
    std::string key = lower(name);
    for (const auto& [k, v] : m_entries) {
        if (k == key) {
            return v;
        }
    }
    return std::nullopt;
}

std::vector<std::string> HttpHeaders::get_all(std::string_view name) const {
    std::string key = lower(name);
    std::vector<std::string> out;
    for (const auto& [k, v] : m_entries) {
        if (k == key) {
            out.push_back(v);
        }
    }
    return out;
}

// The CURLSH (connection cache, DNS, TLS sessions) plus its locks, and a pool
// of idle easy handles so each request does not pay handle setup.
struct HttpClient::Shared {
    CURLSH* share = nullptr;
    std::array<std::mutex, CURL_LOCK_DATA_LAST> locks;
    std::mutex pool_mutex;
    std::vector<CURL*> idle;

    ~Shared() {
        for (CURL* easy : idle) {
            curl_easy_cleanup(easy);
        }
        if (share) {
            curl_share_cleanup(share);
        }
    }
};

namespace {

void share_lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<HttpClient::Shared*>(user)->locks[data].lock();
}

void share_unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<HttpClient::Shared*>(user)->locks[data].unlock();
}

}  // namespace

base::Result<std::shared_ptr<HttpClient>> HttpClient::create(std::string user_agent) {
    std::call_once(g_global_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    std::shared_ptr<HttpClient> client(new HttpClient());
    client->m_user_agent = std::move(user_agent);
    client->m_shared = std::make_unique<Shared>();
    Shared* shared = client->m_shared.get();
    shared->share = curl_share_init();
    if (!shared->share) {
        return base::internal_error("creating a curl share handle failed");
    }
    curl_share_setopt(shared->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(shared->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(shared->share, CURLSHOPT_USERDATA, shared);
    curl_share_setopt(shared->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(shared->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(shared->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    return client;
}

HttpClient::~HttpClient() = default;

base::Result<HttpResponse> HttpClient::perform(const HttpRequest& request, const BodySink& sink) {
    CURL* easy = nullptr;
    {
        std::lock_guard lock(m_shared->pool_mutex);
        if (!m_shared->idle.empty()) {
            easy = m_shared->idle.back();
            m_shared->idle.pop_back();
        }
    }
    if (!easy) {
        easy = curl_easy_init();
        if (!easy) {
            return base::internal_error("creating a curl handle failed");
        }
    } else {
        curl_easy_reset(easy);
    }

    HttpResponse response;
    Transfer transfer{&request, &sink, easy, &response};
    std::array<char, CURL_ERROR_SIZE> error_buffer{};
    curl_slist* header_list = nullptr;
    for (const auto& [name, value] : request.headers.entries()) {
        std::string line = value.empty() ? name + ";" : name + ": " + value;
        header_list = curl_slist_append(header_list, line.c_str());
    }
    // libcurl adds `Expect: 100-continue` to large uploads; registries answer
    // fine without the extra round trip.
    header_list = curl_slist_append(header_list, "Expect:");

    curl_easy_setopt(easy, CURLOPT_SHARE, m_shared->share);
    curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(easy, CURLOPT_USERAGENT, m_user_agent.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, header_list);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error_buffer.data());
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, request.connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, request.stall_timeout_s);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    // Bigger receive chunks: fewer callbacks, write(2)s and hash updates per
    // blob (the default 16 KiB costs measurable CPU on fast links).
    curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, 512L * 1024);
    // Registries send compressed blobs already; ask for nothing else so byte
    // counts and Range offsets mean the stored bytes.
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, nullptr);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, &transfer);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, request.tls.verify ? 1L : 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, request.tls.verify ? 2L : 0L);
    if (!request.tls.ca_file.empty()) {
        // CURLOPT_CAINFO would replace the system bundle; adding the file to
        // OpenSSL's store keeps system CAs trusted alongside the registry's.
        curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, add_extra_ca);
        curl_easy_setopt(easy, CURLOPT_SSL_CTX_DATA, &request.tls.ca_file);
    }
    if (!request.tls.client_cert.empty()) {
        curl_easy_setopt(easy, CURLOPT_SSLCERT, request.tls.client_cert.c_str());
        curl_easy_setopt(easy, CURLOPT_SSLKEY, request.tls.client_key.c_str());
    }

    if (request.method == "HEAD") {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (request.method == "GET") {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    } else {
        uint64_t size = request.reader ? request.reader_size : request.body.size();
        curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
        curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(easy, CURLOPT_READDATA, &transfer);
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }

    CURLcode code = curl_easy_perform(easy);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
    response.transport_error = classify(code);
    if (code != CURLE_OK) {
        response.transport_message =
            error_buffer[0] ? error_buffer.data() : curl_easy_strerror(code);
        if (transfer.too_large) {
            response.transport_error = TransportError::TooLarge;
        } else if (response.transport_error == TransportError::Aborted && !response.abort_error) {
            response.transport_error = TransportError::Other;
        }
    }
    curl_slist_free_all(header_list);
    curl_easy_setopt(easy, CURLOPT_SHARE, nullptr);
    {
        std::lock_guard lock(m_shared->pool_mutex);
        m_shared->idle.push_back(easy);
    }
    return response;
}

base::Result<UrlOrigin> url_origin(std::string_view url) {
    CURLU* handle = curl_url();
    if (!handle) {
        return base::internal_error("allocating a URL handle failed");
    }
    std::string text(url);
    UrlOrigin origin;
    char* part = nullptr;
    if (curl_url_set(handle, CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) {
        curl_url_cleanup(handle);
        return base::invalid_argument("invalid URL `{}`", url);
    }
    if (curl_url_get(handle, CURLUPART_SCHEME, &part, 0) == CURLUE_OK) {
        origin.scheme = lower(part);
        curl_free(part);
    }
    if (curl_url_get(handle, CURLUPART_HOST, &part, 0) == CURLUE_OK) {
        std::string host = lower(part);
        if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
            host = host.substr(1, host.size() - 2);
        }
        origin.host = host;
        curl_free(part);
    }
    if (curl_url_get(handle, CURLUPART_PORT, &part, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        origin.port = std::atoi(part);
        curl_free(part);
    }
    curl_url_cleanup(handle);
    if (origin.host.empty()) {
        return base::invalid_argument("URL `{}` has no host", url);
    }
    return origin;
}

base::Result<std::string> resolve_url(std::string_view base, std::string_view location) {
    CURLU* handle = curl_url();
    if (!handle) {
        return base::internal_error("allocating a URL handle failed");
    }
    std::string base_text(base);
    std::string location_text(location);
    if (curl_url_set(handle, CURLUPART_URL, base_text.c_str(), 0) != CURLUE_OK ||
        curl_url_set(handle, CURLUPART_URL, location_text.c_str(), 0) != CURLUE_OK) {
        curl_url_cleanup(handle);
        return base::invalid_argument("invalid redirect `{}` from `{}`", location, base);
    }
    char* out = nullptr;
    curl_url_get(handle, CURLUPART_URL, &out, 0);
    std::string result = out ? out : "";
    curl_free(out);
    curl_url_cleanup(handle);
    return result;
}

std::string url_escape(std::string_view value) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : value) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 15]);
        }
    }
    return out;
}

}  // namespace locald::oci
