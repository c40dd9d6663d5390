// The OTLP/HTTP protobuf exporter: a hand-written protobuf encoder (no libprotobuf at run
// time) and a small Boost.Beast HTTP/1.1 client (keep-alive, per-attempt timeout, http:// and
// https:// through OpenSSL), with retries on 429/502/503/504 and connection errors, honouring
// Retry-After.
//
// libordertrace is C++17 and installed on its own, so it does not use the gateway's net/
// client; its TLS setup is the same policy (verify the peer, host name or IP check, SNI for a
// name, TLS 1.2 or newer) written directly on OpenSSL through Boost.Asio's ssl::context.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>

#include "lib/internal.h"
#include "ordertrace/tracer.h"

namespace ordertrace {

namespace {

// --- protobuf wire encoding ---

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<char>(v));
  }
  void Tag(uint32_t field, WireType type) { Varint((uint64_t{field} << 3) | type); }
  void Bytes(uint32_t field, const void* data, size_t n) {
    Tag(field, kLen);
    Varint(n);
    out_->append(static_cast<const char*>(data), n);
  }
  void String(uint32_t field, std::string_view s) {
    if (!s.empty()) Bytes(field, s.data(), s.size());
  }
  void UInt(uint32_t field, uint64_t v) {
    if (v == 0) return;
    Tag(field, kVarint);
    Varint(v);
  }
  void Fixed64(uint32_t field, uint64_t v) {
    Tag(field, kFixed64);
    for (int i = 0; i < 8; ++i) out_->push_back(static_cast<char>(v >> (8 * i)));
  }
  void Fixed32(uint32_t field, uint32_t v) {
    Tag(field, kFixed32);
    for (int i = 0; i < 4; ++i) out_->push_back(static_cast<char>(v >> (8 * i)));
  }
  // A nested message: reserves a 5-byte length, patched (non-minimal varint is valid protobuf
  // but we rewrite it minimal by moving the payload, which is cheap for span-sized messages).
  template <typename F>
  void Message(uint32_t field, F&& body) {
    Tag(field, kLen);
    const size_t len_pos = out_->size();
    out_->append(5, '\0');
    const size_t start = out_->size();
    body();
    const size_t n = out_->size() - start;
    char len[5];
    size_t len_bytes = 0;
    uint64_t v = n;
    do {
      len[len_bytes++] = static_cast<char>((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
      v >>= 7;
    } while (v != 0);
    std::memcpy(out_->data() + len_pos, len, len_bytes);
    if (len_bytes < 5) out_->erase(len_pos + len_bytes, 5 - len_bytes);
  }

 private:
  std::string* out_;
};

// common.v1: AnyValue {string 1, bool 2, int 3, double 4, array 5}; ArrayValue {values 1};
// KeyValue {key 1, value 2}.
void EncodeValue(Writer& w, uint32_t field, const AttributeValue& value) {
  w.Message(field, [&] {
    if (const auto* s = std::get_if<std::string>(&value)) {
      w.Bytes(1, s->data(), s->size());  // even when empty: a present string value
    } else if (const auto* b = std::get_if<bool>(&value)) {
      w.Tag(2, kVarint);
      w.Varint(*b ? 1 : 0);
    } else if (const auto* i = std::get_if<int64_t>(&value)) {
      w.Tag(3, kVarint);
      w.Varint(static_cast<uint64_t>(*i));
    } else if (const auto* d = std::get_if<double>(&value)) {
      uint64_t bits;
      std::memcpy(&bits, d, sizeof bits);
      w.Fixed64(4, bits);
    } else if (const auto* a = std::get_if<std::vector<std::string>>(&value)) {
      w.Message(5, [&] {
        for (const std::string& s : *a) {
          w.Message(1, [&] { w.Bytes(1, s.data(), s.size()); });
        }
      });
    }
  });
}

void EncodeKeyValue(Writer& w, uint32_t field, std::string_view key, const AttributeValue& v) {
  w.Message(field, [&] {
    w.String(1, key);
    EncodeValue(w, 2, v);
  });
}

void EncodeAttributes(Writer& w, uint32_t field, const std::vector<Attribute>& attrs) {
  for (const Attribute& a : attrs) EncodeKeyValue(w, field, a.key, a.value);
}

// trace.v1.Span; see proto/opentelemetry/proto/trace/v1/trace.proto for the field numbers.
void EncodeSpan(Writer& w, const SpanData& s) {
  w.Message(2, [&] {
    w.Bytes(1, s.trace_id.data(), s.trace_id.size());
    w.Bytes(2, s.span_id.data(), s.span_id.size());
    w.String(3, s.trace_state);
    if (s.has_parent) w.Bytes(4, s.parent_span_id.data(), s.parent_span_id.size());
    w.String(5, s.name);
    w.UInt(6, static_cast<uint64_t>(s.kind));
    w.Fixed64(7, s.start_time_unix_nano);
    w.Fixed64(8, s.end_time_unix_nano);
    EncodeAttributes(w, 9, s.attributes);
    w.UInt(10, s.dropped_attributes);
    for (const Event& e : s.events) {
      w.Message(11, [&] {
        w.Fixed64(1, e.time_unix_nano);
        w.String(2, e.name);
        EncodeAttributes(w, 3, e.attributes);
      });
    }
    w.UInt(12, s.dropped_events);
    for (const Link& l : s.links) {
      w.Message(13, [&] {
        w.Bytes(1, l.context.trace_id.data(), l.context.trace_id.size());
        w.Bytes(2, l.context.span_id.data(), l.context.span_id.size());
        w.String(3, l.context.trace_state);
        EncodeAttributes(w, 4, l.attributes);
        // flags: W3C trace flags, "has is_remote" (0x100) and "is remote" (0x200).
        w.Fixed32(6, l.context.trace_flags | 0x100u | (l.context.remote ? 0x200u : 0u));
      });
    }
    w.UInt(14, s.dropped_links);
    if (s.status != SpanStatus::kUnset) {
      w.Message(15, [&] {
        w.String(2, s.status_message);
        w.UInt(3, static_cast<uint64_t>(s.status));
      });
    }
    w.Fixed32(16, s.trace_flags | 0x100u | (s.parent_remote ? 0x200u : 0u));
  });
}

}  // namespace

std::string EncodeExportRequest(const std::vector<std::pair<std::string, std::string>>& resource,
                                const std::vector<std::unique_ptr<SpanData>>& spans) {
  std::string out;
  out.reserve(256 + spans.size() * 256);
  Writer w(&out);
  w.Message(1, [&] {                         // ResourceSpans
    w.Message(1, [&] {                       // Resource
      for (const auto& [k, v] : resource) {  // attributes = 1
        EncodeKeyValue(w, 1, k, AttributeValue(v));
      }
    });
    w.Message(2, [&] {                       // ScopeSpans
      w.Message(1, [&] {                     // InstrumentationScope
        w.String(1, internal::kScopeName);   // name
        w.String(2, internal::kSdkVersion);  // version
      });
      for (const auto& s : spans) EncodeSpan(w, *s);
    });
  });
  return out;
}

namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

struct Url {
  bool tls = false;
  std::string host, port, target;
  bool host_is_ip = false;
};

std::optional<Url> ParseUrl(std::string_view url) {
  Url u;
  constexpr std::string_view kHttp = "http://", kHttps = "https://";
  if (url.substr(0, kHttp.size()) == kHttp) {
    url.remove_prefix(kHttp.size());
  } else if (url.substr(0, kHttps.size()) == kHttps) {
    url.remove_prefix(kHttps.size());
    u.tls = true;
  } else {
    return std::nullopt;
  }
  const std::string default_port = u.tls ? "443" : "80";
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  if (authority.empty()) return std::nullopt;
  if (authority.front() == '[') {  // [v6]:port
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    u.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    u.port = authority.size() > 1 && authority.front() == ':' ? std::string(authority.substr(1))
                                                              : default_port;
  } else {
    const size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    u.port =
        colon == std::string_view::npos ? default_port : std::string(authority.substr(colon + 1));
  }
  if (u.host.empty() || u.port.empty()) return std::nullopt;
  boost::system::error_code ec;
  net::ip::make_address(u.host, ec);
  u.host_is_ip = !ec;
  return u;
}

// The file's content, or "" with the reason (naming the file, never its content) in *error.
std::string ReadPemFile(const std::string& path, const char* what, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::string("cannot read the ") + what + " '" + path + "': " + std::strerror(errno);
    return "";
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) *error = std::string("cannot read the ") + what + " '" + path + "'";
  return ss.str();
}

// The client TLS context for `o`, or nullptr with the reason in *error.
std::unique_ptr<ssl::context> MakeTlsContext(const ExporterOptions& o, std::string* error) try {
  if (o.client_certificate_file.empty() != o.client_key_file.empty()) {
    *error = o.client_key_file.empty()
                 ? "client_certificate_file is set without client_key_file (both or neither)"
                 : "client_key_file is set without client_certificate_file (both or neither)";
    return nullptr;
  }
  auto context = std::make_unique<ssl::context>(ssl::context::tls_client);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
  boost::system::error_code ec;
  if (!o.certificate_file.empty()) {
    const std::string pem = ReadPemFile(o.certificate_file, "CA file", error);
    if (!error->empty()) return nullptr;
    context->add_certificate_authority(net::buffer(pem), ec);
    if (ec) {
      ERR_clear_error();
      *error = "the CA file '" + o.certificate_file + "' holds no usable PEM certificate";
      return nullptr;
    }
  } else {
    context->set_default_verify_paths(ec);
    if (ec) {
      ERR_clear_error();
      *error = "cannot load the system's trusted CAs: " + ec.message();
      return nullptr;
    }
  }
  if (!o.client_certificate_file.empty()) {
    const std::string cert =
        ReadPemFile(o.client_certificate_file, "client certificate file", error);
    if (!error->empty()) return nullptr;
    context->use_certificate_chain(net::buffer(cert), ec);
    if (ec) {
      ERR_clear_error();
      *error = "the client certificate file '" + o.client_certificate_file +
               "' holds no usable PEM certificate";
      return nullptr;
    }
    const std::string key = ReadPemFile(o.client_key_file, "client key file", error);
    if (!error->empty()) return nullptr;
    context->use_private_key(net::buffer(key), ssl::context::pem, ec);
    if (ec || SSL_CTX_check_private_key(native) != 1) {
      ERR_clear_error();
      *error = "the client key file '" + o.client_key_file +
               "' holds no usable PEM private key matching the certificate in '" +
               o.client_certificate_file + "'";
      return nullptr;
    }
  }
  return context;
} catch (const std::exception& e) {
  ERR_clear_error();
  *error = std::string("TLS setup failed: ") + e.what();
  return nullptr;
}

// Why the exporter cannot work with `o` ("" when it can); `tls` gets the TLS context of an
// https:// endpoint.
std::string Setup(const ExporterOptions& o, std::optional<Url>* url,
                  std::unique_ptr<ssl::context>* tls) {
  *url = ParseUrl(o.endpoint);
  if (!*url) {
    // The endpoint may carry user:password@; say only its scheme.
    const size_t colon = o.endpoint.find("://");
    return "endpoint is not an http:// or https:// URL (scheme '" +
           (colon == std::string::npos ? std::string() : o.endpoint.substr(0, colon)) + "')";
  }
  // http://: the TLS files do not apply (the OTLP exporter specification: they are for a
  // secure connection only), so a plain endpoint with them set still works.
  if (!(*url)->tls) return "";
  std::string error;
  *tls = MakeTlsContext(o, &error);
  return error;
}

// The reason of a failed TLS handshake: OpenSSL's certificate verification result when that
// is what failed ("certificate verify failed: unable to get local issuer certificate").
std::string HandshakeError(SSL* ssl, const beast::error_code& ec) {
  std::string reason = "TLS handshake: " + ec.message();
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    reason += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
  }
  ERR_clear_error();
  return reason;
}

class OtlpHttpExporter : public SpanExporter {
 public:
  OtlpHttpExporter(ExporterOptions options,
                   std::vector<std::pair<std::string, std::string>> resource)
      : options_(std::move(options)), resource_(std::move(resource)) {
    if (options_.max_attempts < 1) options_.max_attempts = 1;
    setup_error_ = Setup(options_, &url_, &tls_context_);
  }

  ExportResult Export(const std::vector<std::unique_ptr<SpanData>>& spans) noexcept override {
    try {
      if (!setup_error_.empty()) {
        Report(setup_error_);
        return ExportResult::kFailure;
      }
      const std::string body = EncodeExportRequest(resource_, spans);
      auto backoff = options_.initial_backoff;
      for (int attempt = 1;; ++attempt) {
        if (stopped()) return ExportResult::kFailure;
        std::chrono::milliseconds retry_after{-1};
        std::string error;
        const int status = Post(body, &retry_after, &error);
        if (status >= 200 && status < 300) {
          reported_.clear();
          return ExportResult::kSuccess;
        }
        const bool retryable =
            status == 0 || status == 429 || status == 502 || status == 503 || status == 504;
        if (!retryable || attempt >= options_.max_attempts) {
          Report(status == 0 ? error
                             : "the endpoint answered HTTP " + std::to_string(status) +
                                   (status == 401 || status == 403
                                        ? " (check the token in OTEL_EXPORTER_OTLP_HEADERS)"
                                        : ""));
          return ExportResult::kFailure;
        }
        auto wait = retry_after.count() >= 0 ? retry_after : backoff;
        if (wait > options_.max_backoff) wait = options_.max_backoff;
        backoff = std::min(backoff * 2, options_.max_backoff);
        std::unique_lock<std::mutex> lock(mu_);
        if (stop_cv_.wait_for(lock, wait, [&] { return stopped_; })) {
          return ExportResult::kFailure;
        }
      }
    } catch (...) {
      return ExportResult::kFailure;
    }
  }

  void Shutdown() noexcept override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
    }
    stop_cv_.notify_all();
  }

 private:
  bool stopped() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopped_;
  }

  // Tells on_error (or stderr) why exports fail, once per reason in a row.
  void Report(const std::string& reason) {
    if (reason == reported_) return;
    reported_ = reason;
    const std::string line = "export to " + Where() + " failed: " + reason;
    if (options_.on_error) {
      options_.on_error(line);
    } else {
      std::fprintf(stderr, "libordertrace: %s\n", line.c_str());
    }
  }

  // scheme://host:port of the endpoint (no path, query or user info).
  std::string Where() const {
    if (!url_) return "the endpoint";
    const bool v6 = url_->host.find(':') != std::string::npos;
    return std::string(url_->tls ? "https://" : "http://") + (v6 ? "[" : "") + url_->host +
           (v6 ? "]" : "") + ":" + url_->port;
  }

  // One attempt; returns the HTTP status, or 0 on a connection error or timeout (the reason
  // in *error).
  int Post(const std::string& body, std::chrono::milliseconds* retry_after, std::string* error) {
    const auto deadline = Clock::now() + options_.timeout;
    for (int reuse = 0; reuse < 2; ++reuse) {
      const bool reused = connected();
      if (!reused && !Connect(deadline, error)) return 0;
      http::request<http::string_body> req{http::verb::post, url_->target, 11};
      req.set(http::field::host, url_->host + ":" + url_->port);
      req.set(http::field::user_agent, std::string("libordertrace/") + internal::kSdkVersion);
      req.set(http::field::content_type, "application/x-protobuf");
      for (const auto& [k, v] : options_.headers) req.set(k, v);
      req.body() = body;
      req.keep_alive(true);
      req.prepare_payload();
      http::response<http::string_body> res;
      beast::error_code ec;
      if (tls_) {
        beast::get_lowest_layer(*tls_).expires_at(deadline);
        ec = Exchange(*tls_, req, &res);
      } else {
        plain_->expires_at(deadline);
        ec = Exchange(*plain_, req, &res);
      }
      if (ec) {
        Close();
        // A keep-alive connection the server closed meanwhile: once more on a new one.
        if (reused && ec != beast::error::timeout && Clock::now() < deadline) continue;
        *error = ec == beast::error::timeout
                     ? "timed out after " + std::to_string(options_.timeout.count()) + "ms"
                     : "send/receive: " + ec.message();
        ERR_clear_error();
        return 0;
      }
      if (auto ra = res[http::field::retry_after]; !ra.empty()) {
        int64_t seconds = 0;
        auto [p, e] = std::from_chars(ra.data(), ra.data() + ra.size(), seconds);
        if (e == std::errc() && p == ra.data() + ra.size() && seconds >= 0) {
          *retry_after = std::chrono::seconds(seconds);
        }
      }
      if (!res.keep_alive()) Close();
      return res.result_int();
    }
    return 0;
  }

  // Writes `req` and reads the answer into *res on `stream` (plain or TLS).
  template <typename Stream>
  beast::error_code Exchange(Stream& stream, http::request<http::string_body>& req,
                             http::response<http::string_body>* res) {
    beast::error_code ec;
    bool done = false;
    http::async_write(stream, req, [&](beast::error_code e, size_t) {
      ec = e;
      done = true;
    });
    Run(done);
    if (ec) return ec;
    done = false;
    http::async_read(stream, buffer_, *res, [&](beast::error_code e, size_t) {
      ec = e;
      done = true;
    });
    Run(done);
    return ec;
  }

  bool connected() const { return plain_ != nullptr || tls_ != nullptr; }

  bool Connect(Clock::time_point deadline, std::string* error) {
    beast::error_code ec;
    tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(url_->host, url_->port, ec);
    if (ec) {
      *error = "resolve " + url_->host + ": " + ec.message();
      return false;
    }
    beast::tcp_stream* tcp_stream = nullptr;
    if (url_->tls) {
      tls_ = std::make_unique<TlsStream>(ioc_, *tls_context_);
      tcp_stream = &beast::get_lowest_layer(*tls_);
    } else {
      plain_ = std::make_unique<beast::tcp_stream>(ioc_);
      tcp_stream = plain_.get();
    }
    tcp_stream->expires_at(deadline);
    bool done = false;
    tcp_stream->async_connect(results, [&](beast::error_code e, const tcp::endpoint&) {
      ec = e;
      done = true;
    });
    Run(done);
    if (ec) {
      *error = ec == beast::error::timeout ? "connect timed out" : "connect: " + ec.message();
      Close();
      return false;
    }
    tcp_stream->socket().set_option(tcp::no_delay(true), ec);
    if (!url_->tls) return true;

    // Verify the server's name (or address) and send it as SNI, as net::PrepareTlsClient does.
    SSL* ssl = tls_->native_handle();
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (url_->host_is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, url_->host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, url_->host.c_str());
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      X509_VERIFY_PARAM_set1_host(param, url_->host.c_str(), url_->host.size());
    }
    done = false;
    tls_->async_handshake(ssl::stream_base::client, [&](beast::error_code e) {
      ec = e;
      done = true;
    });
    Run(done);
    if (ec) {
      *error = ec == beast::error::timeout ? "TLS handshake timed out" : HandshakeError(ssl, ec);
      Close();
      return false;
    }
    return true;
  }

  void Run(bool& done) {
    ioc_.restart();
    while (!done && ioc_.run_one() > 0) {
    }
  }

  void Close() {
    beast::error_code ignored;
    if (plain_) {
      plain_->socket().shutdown(tcp::socket::shutdown_both, ignored);
      plain_->socket().close(ignored);
      plain_.reset();
    }
    if (tls_) {
      // No close_notify: the connection is dropped after an error or the server's close.
      beast::get_lowest_layer(*tls_).socket().close(ignored);
      tls_.reset();
    }
    buffer_.clear();
  }

  ExporterOptions options_;
  std::vector<std::pair<std::string, std::string>> resource_;
  std::optional<Url> url_;
  std::unique_ptr<ssl::context> tls_context_;  // https:// only
  std::string setup_error_;                    // why no export can work ("" when fine)
  std::string reported_;                       // the last reason reported (export thread only)
  net::io_context ioc_;
  std::unique_ptr<beast::tcp_stream> plain_;  // the connection: one of these two, or none
  std::unique_ptr<TlsStream> tls_;
  beast::flat_buffer buffer_;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopped_ = false;
};

}  // namespace

std::unique_ptr<SpanExporter> MakeOtlpHttpExporter(
    ExporterOptions options, std::vector<std::pair<std::string, std::string>> resource) {
  return std::make_unique<OtlpHttpExporter>(std::move(options), std::move(resource));
}

std::string CheckExporterOptions(const ExporterOptions& options) {
  std::optional<Url> url;
  std::unique_ptr<ssl::context> tls;
  return Setup(options, &url, &tls);
}

}  // namespace ordertrace
