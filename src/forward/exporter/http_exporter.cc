// OtlpExporter implementations.
//
// OTLP/gRPC: a generic stub sends the request bytes as they are (never parsed by libprotobuf);
// only the small response and the error details use the generated classes.
// OTLP/HTTP: a Boost.Beast client over one keep-alive connection (TLS through OpenSSL for
// https), driven by asynchronous operations on a private io_context so that the whole call,
// connection and TLS handshake included, is bounded by the timeout.
//
// Answers are classified per the OTLP specification's retry rules (docs/forwarding.md).

#include "forward/otlp_exporter.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <zlib.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <exception>
#include <fstream>
#include <future>
#include <optional>
#include <sstream>
#include <string_view>

#include "common/gzip.h"
#include "common/log.h"
#include "google/rpc/status.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "otlp/grpc_names.h"

namespace ordertrace::forward {
namespace {

namespace collector = opentelemetry::proto::collector::trace::v1;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kDefaultHttpPath = "/v1/traces";
constexpr const char* kUserAgent = "ordertrace";
// Retry delays beyond this are clamped (and an int of milliseconds cannot overflow).
constexpr int64_t kMaxRetryAfterMs = 24LL * 3600 * 1000;
// Answers are small (ExportTraceServiceResponse, google.rpc.Status); anything bigger is not
// an OTLP upstream.
constexpr uint64_t kMaxResponseBodyBytes = 4 << 20;

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view SV(beast::string_view s) { return {s.data(), s.size()}; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ToLower(c);
  return out;
}

int ClampRetryAfter(int64_t ms) {
  return static_cast<int>(std::clamp<int64_t>(ms, 0, kMaxRetryAfterMs));
}

// ---------------------------------------------------------------------------------------------
// URL parsing

struct Endpoint {
  std::string scheme;  // "grpc", "grpcs", "http" or "https"
  std::string host;    // without the brackets of an IPv6 literal
  uint16_t port = 0;
  std::string target;  // HTTP: path and query
  bool grpc = false;
  bool tls = false;

  bool HostIsIp() const {
    boost::system::error_code ec;
    net::ip::make_address(host, ec);
    return !ec;
  }
  // host:port, the IPv6 literal in brackets.
  std::string Authority(bool with_port = true) const {
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    if (with_port) h += ":" + std::to_string(port);
    return h;
  }
};

// The URL as it may appear in a message: credentials (user:password@) are never echoed.
std::string Redacted(const std::string& url) {
  const size_t sep = url.find("://");
  if (sep == std::string::npos) return url;
  const size_t authority_end = url.find_first_of("/?#", sep + 3);
  const size_t at = url.rfind('@', authority_end == std::string::npos ? url.size() : authority_end);
  if (at == std::string::npos || at < sep + 3) return url;
  return url.substr(0, sep + 3) + "<redacted>" + url.substr(at);
}

Status UrlError(const std::string& url, const std::string& what) {
  return Status::InvalidArgument("upstream URL '" + Redacted(url) + "': " + what);
}

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

Result<Endpoint> ParseUrl(const std::string& url) {
  if (url.empty()) return Status::InvalidArgument("upstream URL is empty");
  for (char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return UrlError(url, "contains a space, a control or a non-ASCII character");
    }
  }
  const size_t sep = url.find("://");
  if (sep == std::string::npos) {
    return UrlError(url,
                    "no scheme: expected grpc://host:port, grpcs://host:port, "
                    "http://host:port/v1/traces or https://host:port/v1/traces");
  }
  Endpoint ep;
  ep.scheme = Lower(url.substr(0, sep));
  if (ep.scheme == "grpc" || ep.scheme == "grpcs") {
    ep.grpc = true;
    ep.tls = ep.scheme == "grpcs";
  } else if (ep.scheme == "http" || ep.scheme == "https") {
    ep.tls = ep.scheme == "https";
  } else {
    return UrlError(url, "scheme must be grpc, grpcs, http or https");
  }

  const size_t authority_start = sep + 3;
  const size_t authority_end = url.find_first_of("/?#", authority_start);
  const std::string authority = url.substr(authority_start, authority_end == std::string::npos
                                                                ? std::string::npos
                                                                : authority_end - authority_start);
  const std::string rest = authority_end == std::string::npos ? "" : url.substr(authority_end);
  if (rest.find('#') != std::string::npos) return UrlError(url, "a fragment (#...) is not allowed");
  if (authority.find('@') != std::string::npos) {
    return UrlError(url,
                    "credentials in the URL are not supported: set an authorization header "
                    "instead");
  }

  std::string port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) {
      return UrlError(url, "unterminated IPv6 address ('[' without ']')");
    }
    ep.host = authority.substr(1, close - 1);
    // A zone identifier is written "%25" in a URL (RFC 6874).
    if (const size_t zone = ep.host.find("%25"); zone != std::string::npos) {
      ep.host.replace(zone, 3, "%");
    }
    const std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return UrlError(url, "unexpected '" + after + "' after the IPv6 address");
      }
      port_text = after.substr(1);
      has_port = true;
    }
    boost::system::error_code ec;
    const auto address = net::ip::make_address(ep.host, ec);
    if (ec || !address.is_v6()) return UrlError(url, "'" + ep.host + "' is not an IPv6 address");
  } else {
    const size_t colon = authority.find(':');
    if (colon != std::string::npos && authority.find(':', colon + 1) != std::string::npos) {
      return UrlError(url, "an IPv6 address needs brackets, e.g. grpc://[::1]:4317");
    }
    ep.host = authority.substr(0, colon);
    if (colon != std::string::npos) {
      port_text = authority.substr(colon + 1);
      has_port = true;
    }
    for (char c : ep.host) {
      if (!IsHostChar(c)) {
        return UrlError(url, std::string("invalid character '") + c + "' in the host");
      }
    }
  }
  if (ep.host.empty()) return UrlError(url, "the host is missing");

  if (has_port) {
    unsigned long port = 0;
    const bool digits = !port_text.empty() && port_text.size() <= 5 &&
                        std::all_of(port_text.begin(), port_text.end(),
                                    [](char c) { return c >= '0' && c <= '9'; });
    if (digits) port = std::stoul(port_text);
    if (!digits || port == 0 || port > 65535) {
      return UrlError(url, "port '" + port_text + "' is not a number from 1 to 65535");
    }
    ep.port = static_cast<uint16_t>(port);
  } else if (ep.grpc) {
    return UrlError(url, "the port is missing (" + ep.scheme + "://host:port, e.g. :4317)");
  } else {
    ep.port = ep.tls ? 443 : 80;
  }

  if (ep.grpc) {
    if (!rest.empty() && rest != "/") {
      return UrlError(url, "a gRPC URL has no path or query (got '" + rest + "')");
    }
  } else if (rest.empty() || rest == "/") {
    ep.target = kDefaultHttpPath;
  } else if (rest.front() == '?') {
    ep.target = kDefaultHttpPath + rest;
  } else {
    ep.target = rest;
  }
  return ep;
}

// ---------------------------------------------------------------------------------------------
// Headers and TLS material

bool IsTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Checks the configured headers and returns them with lower-case names.
Result<std::vector<std::pair<std::string, std::string>>> CheckHeaders(
    const std::vector<std::pair<std::string, std::string>>& headers, bool grpc) {
  // Framing and transport headers the exporter sets itself.
  static constexpr std::string_view kHttpReserved[] = {
      "content-length", "transfer-encoding", "connection", "content-encoding", "content-type", "te",
      "upgrade",        "keep-alive",        "expect",     "trailer"};
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : headers) {
    if (name.empty()) return Status::InvalidArgument("upstream header with an empty name");
    const std::string key = Lower(name);
    for (char c : key) {
      const bool ok = grpc ? ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                              c == '_' || c == '.')
                           : IsTokenChar(c);
      if (!ok) {
        return Status::InvalidArgument("upstream header '" + name + "': invalid character '" +
                                       std::string(1, c) + "' in the name");
      }
    }
    const bool binary = grpc && key.size() > 4 && key.ends_with("-bin");
    for (char c : value) {
      const auto u = static_cast<unsigned char>(c);
      const bool ok = binary || (u >= 0x20 && u < 0x7f) || (!grpc && (u == '\t' || u >= 0x80));
      if (!ok) {
        return Status::InvalidArgument("upstream header '" + name +
                                       "': the value holds a control character");
      }
    }
    const bool reserved = std::find(std::begin(kHttpReserved), std::end(kHttpReserved), key) !=
                              std::end(kHttpReserved) ||
                          (grpc && key.starts_with("grpc-"));
    if (reserved) {
      return Status::InvalidArgument("upstream header '" + name +
                                     "' is set by the exporter and cannot be configured");
    }
    out.emplace_back(key, value);
  }
  return out;
}

Result<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument(std::string("cannot read the ") + what + " '" + path +
                                   "': " + std::strerror(errno));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    return Status::InvalidArgument(std::string("cannot read the ") + what + " '" + path + "'");
  }
  return ss.str();
}

bool IsPemPrivateKey(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return false;
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) {
    ERR_clear_error();
    return false;
  }
  EVP_PKEY_free(key);
  return true;
}

struct TlsMaterial {
  std::string ca;    // PEM; empty: the system's trust store
  std::string cert;  // PEM chain for mTLS
  std::string key;   // PEM
};

// Reads the TLS files and checks them with OpenSSL; fills `context` (an OpenSSL client
// context verifying the peer) as a side effect.
Result<TlsMaterial> LoadTls(const ExporterOptions& o, ssl::context& context) {
  TlsMaterial m;
  boost::system::error_code ec;
  context.set_verify_mode(ssl::verify_peer, ec);
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
  if (!o.ca_file.empty()) {
    auto ca = ReadFile(o.ca_file, "CA file");
    if (!ca.ok()) return ca.status();
    m.ca = std::move(ca).value();
    context.add_certificate_authority(net::buffer(m.ca), ec);
    if (ec) {
      return Status::InvalidArgument("CA file '" + o.ca_file +
                                     "' holds no usable PEM certificate: " + ec.message());
    }
  } else {
    context.set_default_verify_paths(ec);
    if (ec) {
      return Status::InvalidArgument("cannot load the system's trusted CAs: " + ec.message());
    }
  }
  if (!o.cert_file.empty()) {
    auto cert = ReadFile(o.cert_file, "client certificate file");
    if (!cert.ok()) return cert.status();
    m.cert = std::move(cert).value();
    auto key = ReadFile(o.key_file, "client key file");
    if (!key.ok()) return key.status();
    m.key = std::move(key).value();
    context.use_certificate_chain(net::buffer(m.cert), ec);
    if (ec) {
      return Status::InvalidArgument("client certificate file '" + o.cert_file +
                                     "' holds no usable PEM certificate: " + ec.message());
    }
    if (!IsPemPrivateKey(m.key)) {
      return Status::InvalidArgument("client key file '" + o.key_file +
                                     "' holds no usable PEM private key");
    }
    context.use_private_key(net::buffer(m.key), ssl::context::pem, ec);
    if (ec || SSL_CTX_check_private_key(context.native_handle()) != 1) {
      return Status::InvalidArgument("client key file '" + o.key_file +
                                     "' does not match the certificate in '" + o.cert_file + "'");
    }
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Results

ExportResult Retryable(std::string code, std::string reason, int retry_after_ms = -1) {
  ExportResult r;
  r.kind = ExportResult::Kind::kRetryable;
  r.code = std::move(code);
  r.reason = std::move(reason);
  r.retry_after_ms = retry_after_ms;
  return r;
}

ExportResult Permanent(std::string code, std::string reason) {
  ExportResult r;
  r.kind = ExportResult::Kind::kPermanent;
  r.code = std::move(code);
  r.reason = std::move(reason);
  return r;
}

// Fills partial success from an ExportTraceServiceResponse; an unreadable answer is logged
// and otherwise ignored (the upstream did accept the request).
void ReadPartialSuccess(const std::string& body, bool json, ExportResult& r) {
  if (body.empty()) return;
  collector::ExportTraceServiceResponse response;
  bool parsed = false;
  if (json) {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;
    parsed = google::protobuf::util::JsonStringToMessage(body, &response, options).ok();
  } else {
    parsed = response.ParseFromString(body);
  }
  if (!parsed) {
    log::Debug("upstream answer is not an ExportTraceServiceResponse",
               {{"bytes", static_cast<uint64_t>(body.size())}});
    return;
  }
  if (response.has_partial_success()) {
    r.rejected_spans = response.partial_success().rejected_spans();
    r.partial_message = response.partial_success().error_message();
  }
}

// The retry delay of a google.rpc.RetryInfo among a google.rpc.Status's details; -1 if none.
int RetryDelayMs(const google::rpc::Status& status) {
  for (const auto& any : status.details()) {
    google::rpc::RetryInfo info;
    if (any.Is<google::rpc::RetryInfo>() && any.UnpackTo(&info)) {
      const auto& d = info.retry_delay();
      if (d.seconds() < 0 || d.nanos() < 0) return 0;
      if (d.seconds() >= kMaxRetryAfterMs / 1000) return ClampRetryAfter(kMaxRetryAfterMs);
      return ClampRetryAfter(d.seconds() * 1000 + d.nanos() / 1000000);
    }
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// OTLP/gRPC

using otlp::GrpcCodeName;

ExportResult ClassifyGrpc(const grpc::Status& status, grpc::ByteBuffer& response) {
  const grpc::StatusCode code = status.error_code();
  if (status.ok()) {
    ExportResult r;
    r.code = "OK";
    std::vector<grpc::Slice> slices;
    if (response.Valid() && response.Dump(&slices).ok()) {
      std::string bytes;
      bytes.reserve(response.Length());
      for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
      ReadPartialSuccess(bytes, /*json=*/false, r);
    }
    return r;
  }

  int retry_after_ms = -1;
  if (!status.error_details().empty()) {
    google::rpc::Status details;
    if (details.ParseFromString(status.error_details())) retry_after_ms = RetryDelayMs(details);
  }
  const std::string name = GrpcCodeName(code);
  std::string reason = "grpc " + name;
  if (!status.error_message().empty()) reason += ": " + status.error_message();
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::DATA_LOSS:
      return Retryable(name, std::move(reason), retry_after_ms);
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      // Retryable only when the server says recovery is possible (OTLP specification).
      if (retry_after_ms >= 0) return Retryable(name, std::move(reason), retry_after_ms);
      return Permanent(name, reason + " (no RetryInfo: not retryable)");
    default:
      return Permanent(name, std::move(reason));
  }
}

class GrpcExporter final : public OtlpExporter {
 public:
  GrpcExporter(const Endpoint& ep, const ExporterOptions& options,
               std::vector<std::pair<std::string, std::string>> headers,
               const std::shared_ptr<grpc::ChannelCredentials>& credentials)
      : tls_(ep.tls),
        timeout_(options.timeout),
        gzip_(options.gzip),
        headers_(std::move(headers)),
        // "dns:///" always: a bare "unix:4317" or "ipv4:..." would select another resolver.
        channel_(grpc::CreateCustomChannel("dns:///" + ep.Authority(), credentials, ChannelArgs())),
        stub_(channel_) {}

  const char* scheme() const override { return tls_ ? "grpcs" : "grpc"; }

  ExportResult Export(const std::string& request) override {
    try {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + timeout_);
      if (gzip_) context.set_compression_algorithm(GRPC_COMPRESS_GZIP);
      for (const auto& [key, value] : headers_) context.AddMetadata(key, value);

      grpc::Slice slice(request);  // a copy: gRPC may hold its slices past the call
      grpc::ByteBuffer request_buffer(&slice, 1);
      grpc::ByteBuffer response;
      std::promise<grpc::Status> done;
      std::future<grpc::Status> result = done.get_future();
      // Completes by the deadline at the latest.
      stub_.UnaryCall(&context, otlp::kGrpcExportMethod, grpc::StubOptions(), &request_buffer,
                      &response, [&done](grpc::Status s) { done.set_value(std::move(s)); });
      const grpc::Status status = result.get();
      return ClassifyGrpc(status, response);
    } catch (const std::exception& e) {
      return Retryable("internal", std::string("exporter error: ") + e.what());
    } catch (...) {
      return Retryable("internal", "exporter error");
    }
  }

 private:
  static grpc::ChannelArguments ChannelArgs() {
    grpc::ChannelArguments args;
    // The forwarder retries with its own backoff and counts every attempt.
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    // Find a restarted upstream within seconds: reconnection backoff capped at 5 s instead of
    // gRPC's default of two minutes (the connect timeout stays at gRPC's 20 s).
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 1000);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
    args.SetUserAgentPrefix(kUserAgent);
    return args;
  }

  const bool tls_;
  const std::chrono::milliseconds timeout_;
  const bool gzip_;
  const std::vector<std::pair<std::string, std::string>> headers_;
  std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
};

// ---------------------------------------------------------------------------------------------
// OTLP/HTTP

// Retry-After: delay-seconds or an HTTP-date (RFC 9110 10.2.3); -1 when absent or unreadable.
int ParseRetryAfter(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty()) return -1;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return ClampRetryAfter(kMaxRetryAfterMs);
    return ClampRetryAfter(std::stoll(std::string(value)) * 1000);
  }
  // IMF-fixdate, then the obsolete RFC 850 and asctime forms.
  static constexpr const char* kFormats[] = {"%a, %d %b %Y %H:%M:%S GMT",
                                             "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"};
  const std::string text(value);
  for (const char* format : kFormats) {
    std::tm tm{};
    const char* end = strptime(text.c_str(), format, &tm);
    if (end == nullptr || *end != '\0') continue;
    const time_t when = timegm(&tm);
    if (when == static_cast<time_t>(-1)) continue;
    const auto now = std::chrono::system_clock::now();
    const auto delta = std::chrono::system_clock::from_time_t(when) - now;
    return ClampRetryAfter(std::chrono::duration_cast<std::chrono::milliseconds>(delta).count());
  }
  return -1;
}

// A short printable excerpt of a text body for a reason string.
std::string Excerpt(std::string_view body) {
  constexpr size_t kMax = 200;
  std::string out;
  for (char c : body.substr(0, kMax)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : ' ');
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (body.size() > kMax) out += "...";
  return out;
}

ExportResult ClassifyHttp(const http::response<http::string_body>& res) {
  const int status = res.result_int();
  const std::string content_type = Lower(SV(res[http::field::content_type]));
  const bool json = content_type.find("json") != std::string::npos;
  if (status >= 200 && status < 300) {
    ExportResult r;
    r.code = std::to_string(status);
    ReadPartialSuccess(res.body(), json, r);
    return r;
  }

  // The body of a failure is a google.rpc.Status (OTLP specification, "Failures"); tolerate
  // anything else, e.g. a proxy's text or HTML page.
  std::string message;
  int retry_info_ms = -1;
  if (!res.body().empty()) {
    google::rpc::Status rpc;
    bool parsed = false;
    if (json) {
      google::protobuf::util::JsonParseOptions options;
      options.ignore_unknown_fields = true;
      parsed = google::protobuf::util::JsonStringToMessage(res.body(), &rpc, options).ok();
    } else if (content_type.find("text/") == std::string::npos) {
      parsed = rpc.ParseFromString(res.body());
    }
    if (parsed) {
      message = rpc.message();
      retry_info_ms = RetryDelayMs(rpc);
    } else if (content_type.starts_with("text/plain")) {
      message = Excerpt(res.body());
    }
  }
  std::string reason = "http " + std::to_string(status);
  if (!message.empty()) reason += ": " + message;
  if (status >= 300 && status < 400) reason += " (redirects are not followed)";

  if (status == 429 || status == 502 || status == 503 || status == 504) {
    int retry_after_ms = ParseRetryAfter(SV(res[http::field::retry_after]));
    if (retry_after_ms < 0) retry_after_ms = retry_info_ms;
    return Retryable(std::to_string(status), std::move(reason), retry_after_ms);
  }
  return Permanent(std::to_string(status), std::move(reason));
}

using Request = http::request<http::span_body<const char>>;

bool IsStaleConnectionError(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == net::error::connection_aborted || ec == ssl::error::stream_truncated;
}

class HttpExporter final : public OtlpExporter {
 public:
  HttpExporter(Endpoint ep, const ExporterOptions& options,
               std::vector<std::pair<std::string, std::string>> headers,
               std::unique_ptr<ssl::context> tls)
      : ep_(std::move(ep)),
        timeout_(options.timeout),
        gzip_(options.gzip),
        headers_(std::move(headers)),
        ssl_context_(std::move(tls)) {
    const bool default_port = ep_.port == (ep_.tls ? 443 : 80);
    host_header_ = ep_.Authority(!default_port);
  }

  const char* scheme() const override { return ep_.tls ? "https" : "http"; }

  ExportResult Export(const std::string& request) override {
    try {
      return DoExport(request);
    } catch (const std::exception& e) {
      Close();
      return Retryable("internal", std::string("exporter error: ") + e.what());
    } catch (...) {
      Close();
      return Retryable("internal", "exporter error");
    }
  }

 private:
  // What went wrong on the connection; `stale` when a reused keep-alive connection turned out
  // to be closed by the peer before it answered anything (worth one immediate retry).
  struct Failure {
    ExportResult result;
    bool stale = false;
  };

  ExportResult DoExport(const std::string& request) {
    const SteadyClock::time_point deadline = SteadyClock::now() + timeout_;
    Request req{http::verb::post, ep_.target, 11};
    req.set(http::field::host, host_header_);
    req.set(http::field::user_agent, kUserAgent);
    req.set(http::field::content_type, "application/x-protobuf");
    for (const auto& [key, value] : headers_) req.set(key, value);
    std::string compressed;
    if (gzip_) {
      auto gzipped = GzipCompress(request, Z_BEST_SPEED);  // the sender's CPU is the gateway's
      if (!gzipped.ok()) return Retryable("internal", gzipped.status().message());
      compressed = std::move(gzipped).value();
      req.set(http::field::content_encoding, "gzip");
    }
    const std::string& body = gzip_ ? compressed : request;
    req.body() = beast::span<const char>(body.data(), body.size());  // no copy
    req.keep_alive(true);
    req.prepare_payload();

    for (int attempt = 0;; ++attempt) {
      const bool reused = Connected();
      if (!reused) {
        if (auto failure = Connect(deadline)) return failure->result;
      }
      http::response_parser<http::string_body> parser;
      parser.body_limit(kMaxResponseBodyBytes);
      bool sent = false;
      std::optional<Failure> failure = ep_.tls ? RoundTrip(*tls_, req, parser, deadline, &sent)
                                               : RoundTrip(*plain_, req, parser, deadline, &sent);
      if (!failure) {
        const bool keep_alive = sent && parser.get().keep_alive();
        ExportResult result = ClassifyHttp(parser.get());
        if (!keep_alive) Close();
        return result;
      }
      Close();
      if (!(failure->stale && reused && attempt == 0 && SteadyClock::now() < deadline)) {
        return failure->result;
      }
      log::Debug("upstream closed the keep-alive connection; reconnecting",
                 {{"upstream", ep_.Authority()}});
    }
  }

  bool Connected() const { return ep_.tls ? tls_ != nullptr : plain_ != nullptr; }

  void Close() {
    boost::system::error_code ignored;
    if (plain_) plain_->socket().close(ignored);
    if (tls_) beast::get_lowest_layer(*tls_).socket().close(ignored);
    // Completes anything the close cancelled, so no handler outlives its operation's state.
    ioc_.restart();
    ioc_.poll();
    plain_.reset();
    tls_.reset();
    buffer_.clear();
  }

  ExportResult Timeout(const char* during) const {
    return Retryable("timeout", "upstream " + ep_.Authority() + " did not answer within " +
                                    std::to_string(timeout_.count()) + " ms (" + during + ")");
  }

  Failure IoFailure(const boost::system::error_code& ec, const char* during) const {
    if (ec == beast::error::timeout) return {Timeout(during), false};
    const bool stale = IsStaleConnectionError(ec);
    // An OpenSSL error after the handshake, e.g. the server's alert refusing our certificate
    // (TLS 1.3 checks the client certificate after the client considers the handshake done).
    const bool tls = !stale && ec.category() == net::error::get_ssl_category();
    return {Retryable(tls ? "tls_error" : "connect_error",
                      during + std::string(" ") + ep_.Authority() + ": " + ec.message()),
            stale};
  }

  // Runs the private io_context until `done`; every socket operation is bounded by the
  // stream's expiry, so this returns by the deadline.
  void RunUntil(const bool& done) {
    ioc_.restart();
    while (!done) {
      if (ioc_.run_one() == 0) break;
    }
  }

  // Resolves, connects and (https) handshakes; nullopt on success.
  std::optional<Failure> Connect(SteadyClock::time_point deadline) {
    // The resolver runs getaddrinfo on a background thread that no timer can interrupt:
    // wait for it until the deadline only.  Its handler owns its state, so a late answer is
    // harmless.
    struct Resolution {
      bool done = false;
      boost::system::error_code ec;
      tcp::resolver::results_type results;
    };
    auto resolution = std::make_shared<Resolution>();
    resolver_.async_resolve(
        ep_.host, std::to_string(ep_.port),
        [resolution](const boost::system::error_code& ec, tcp::resolver::results_type results) {
          resolution->done = true;
          resolution->ec = ec;
          resolution->results = std::move(results);
        });
    ioc_.restart();
    while (!resolution->done) {
      if (ioc_.run_one_until(deadline) == 0) break;
    }
    if (!resolution->done) {
      resolver_.cancel();
      return Failure{Timeout("resolving the host"), false};
    }
    if (resolution->ec) {
      return Failure{Retryable("connect_error",
                               "cannot resolve " + ep_.host + ": " + resolution->ec.message()),
                     false};
    }

    auto stream = std::make_unique<beast::tcp_stream>(ioc_);
    stream->expires_at(deadline);
    bool done = false;
    boost::system::error_code ec;
    stream->async_connect(resolution->results,
                          [&](const boost::system::error_code& e, const tcp::endpoint&) {
                            ec = e;
                            done = true;
                          });
    RunUntil(done);
    if (!done) return Failure{Retryable("internal", "connect did not complete"), false};
    if (ec) {
      boost::system::error_code ignored;
      stream->socket().close(ignored);
      return IoFailure(ec, "connect to");
    }
    boost::system::error_code ignored;
    stream->socket().set_option(tcp::no_delay(true), ignored);

    if (!ep_.tls) {
      plain_ = std::move(stream);
      log::Debug("connected to the upstream", {{"upstream", ep_.Authority()}});
      return std::nullopt;
    }

    tls_ =
        std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(*stream), *ssl_context_);
    SSL* ssl = tls_->native_handle();
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (ep_.HostIsIp()) {
      X509_VERIFY_PARAM_set1_ip_asc(param, ep_.host.c_str());
    } else {
      // SNI carries host names only (RFC 6066), never an address.
      SSL_set_tlsext_host_name(ssl, ep_.host.c_str());
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      X509_VERIFY_PARAM_set1_host(param, ep_.host.c_str(), ep_.host.size());
    }
    done = false;
    beast::get_lowest_layer(*tls_).expires_at(deadline);
    tls_->async_handshake(ssl::stream_base::client, [&](const boost::system::error_code& e) {
      ec = e;
      done = true;
    });
    RunUntil(done);
    if (!done || ec) {
      std::optional<Failure> failure;
      if (!done) {
        failure = Failure{Retryable("internal", "TLS handshake did not complete"), false};
      } else if (ec == beast::error::timeout) {
        failure = Failure{Timeout("TLS handshake"), false};
      } else {
        std::string reason = "TLS handshake with " + ep_.Authority() + ": " + ec.message();
        const long verify = SSL_get_verify_result(ssl);
        if (verify != X509_V_OK) {
          reason += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
        }
        failure = Failure{Retryable("tls_error", std::move(reason)), false};
      }
      Close();
      return failure;
    }
    log::Debug("connected to the upstream (TLS)", {{"upstream", ep_.Authority()}});
    return std::nullopt;
  }

  // Sends the request and reads the answer, full duplex: an upstream may answer (413, 401,
  // ...) before it has read the whole request, and then stop reading it.  `sent` tells
  // whether the request went out in full; if not, the connection cannot be reused.
  template <class Stream>
  std::optional<Failure> RoundTrip(Stream& stream, Request& req,
                                   http::response_parser<http::string_body>& parser,
                                   SteadyClock::time_point deadline, bool* sent) {
    auto& lowest = beast::get_lowest_layer(stream);
    lowest.expires_at(deadline);
    bool wrote = false;
    bool read = false;
    boost::system::error_code write_ec;
    boost::system::error_code ec;
    http::async_write(stream, req, [&](const boost::system::error_code& e, std::size_t) {
      write_ec = e;
      wrote = true;
    });
    http::async_read(stream, buffer_, parser, [&](const boost::system::error_code& e, std::size_t) {
      ec = e;
      read = true;
    });
    RunUntil(read);
    if (!wrote) {
      lowest.cancel();  // the write's handler must run before `req` goes away
      RunUntil(wrote);
    }
    *sent = wrote && !write_ec;
    if (!read || !wrote) return Failure{Retryable("internal", "I/O did not complete"), false};
    if (!ec) return std::nullopt;
    if (ec == beast::error::timeout) {
      return Failure{Timeout(*sent ? "waiting for the answer" : "sending the request"), false};
    }
    const bool http_error =
        ec.category() == http::make_error_code(http::error::end_of_stream).category();
    if (http_error && ec != http::error::end_of_stream && ec != http::error::partial_message) {
      // Not an HTTP answer, or a broken one: is the URL pointing at an OTLP/HTTP server?
      return Failure{Retryable("protocol_error",
                               "bad HTTP answer from " + ep_.Authority() + ": " + ec.message()),
                     false};
    }
    Failure f = IoFailure(ec, "reading the answer from");
    f.stale = f.stale && !parser.got_some();
    return f;
  }

  const Endpoint ep_;
  const std::chrono::milliseconds timeout_;
  const bool gzip_;
  const std::vector<std::pair<std::string, std::string>> headers_;
  std::string host_header_;
  // Declared before everything that uses it, so it is destroyed last.
  net::io_context ioc_{1};
  tcp::resolver resolver_{ioc_};
  std::unique_ptr<ssl::context> ssl_context_;                  // https only
  std::unique_ptr<beast::tcp_stream> plain_;                   // the keep-alive connection (http)
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_;  // ... (https)
  beast::flat_buffer buffer_;
};

Result<std::unique_ptr<OtlpExporter>> CreateExporter(const ExporterOptions& options) {
  auto parsed = ParseUrl(options.url);
  if (!parsed.ok()) return parsed.status();
  Endpoint ep = std::move(parsed).value();

  if (options.timeout.count() <= 0) {
    return Status::InvalidArgument("upstream timeout must be positive (got " +
                                   std::to_string(options.timeout.count()) + " ms)");
  }
  const bool any_tls_file =
      !options.ca_file.empty() || !options.cert_file.empty() || !options.key_file.empty();
  if (!ep.tls && any_tls_file) {
    return UrlError(options.url, "ca_file, cert_file and key_file need " +
                                     std::string(ep.grpc ? "grpcs://" : "https://"));
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return Status::InvalidArgument(
        "upstream TLS: cert_file and key_file go together (the client certificate for mTLS)");
  }
  auto headers = CheckHeaders(options.headers, ep.grpc);
  if (!headers.ok()) return headers.status();

  std::unique_ptr<ssl::context> context;
  TlsMaterial tls;
  if (ep.tls) {
    context = std::make_unique<ssl::context>(ssl::context::tls_client);
    auto loaded = LoadTls(options, *context);
    if (!loaded.ok()) return loaded.status();
    tls = std::move(loaded).value();
  }

  std::unique_ptr<OtlpExporter> exporter;
  if (ep.grpc) {
    std::shared_ptr<grpc::ChannelCredentials> credentials;
    if (ep.tls) {
      grpc::SslCredentialsOptions ssl_options;
      ssl_options.pem_root_certs = tls.ca;  // empty: gRPC's default roots
      ssl_options.pem_cert_chain = tls.cert;
      ssl_options.pem_private_key = tls.key;
      credentials = grpc::SslCredentials(ssl_options);
    } else {
      credentials = grpc::InsecureChannelCredentials();
    }
    exporter = std::make_unique<GrpcExporter>(ep, options, std::move(headers).value(), credentials);
  } else {
    exporter =
        std::make_unique<HttpExporter>(ep, options, std::move(headers).value(), std::move(context));
  }
  log::Info("OTLP exporter configured",
            {{"upstream", Redacted(options.url)},
             {"scheme", exporter->scheme()},
             {"gzip", options.gzip},
             {"timeout_ms", static_cast<int64_t>(options.timeout.count())}});
  return exporter;
}

}  // namespace

Result<std::unique_ptr<OtlpExporter>> OtlpExporter::Create(const ExporterOptions& options) {
  try {
    return CreateExporter(options);
  } catch (const std::exception& e) {
    return Status::InvalidArgument("upstream exporter: " + std::string(e.what()));
  }
}

}  // namespace ordertrace::forward
