#include "forward/exporter/http_exporter.h"

#include <google/protobuf/util/json_util.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <exception>
#include <string_view>

#include "common/gzip.h"
#include "google/rpc/status.pb.h"
#include "net/http_client.h"

namespace ordertrace::forward {
namespace {

// Answers are small (ExportTraceServiceResponse, google.rpc.Status); anything bigger is not
// an OTLP upstream.
constexpr uint64_t kMaxResponseBodyBytes = 4 << 20;

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

ExportResult ClassifyHttp(const net::HttpReply& res) {
  const int status = res.status;
  const std::string content_type = Lower(res.content_type);
  const bool json = content_type.find("json") != std::string::npos;
  if (status >= 200 && status < 300) {
    ExportResult r;
    r.code = std::to_string(status);
    ReadPartialSuccess(res.body, json, r);
    return r;
  }

  // The body of a failure is a google.rpc.Status (OTLP specification, "Failures"); tolerate
  // anything else, e.g. a proxy's text or HTML page.
  std::string message;
  int retry_info_ms = -1;
  if (!res.body.empty()) {
    google::rpc::Status rpc;
    bool parsed = false;
    if (json) {
      google::protobuf::util::JsonParseOptions options;
      options.ignore_unknown_fields = true;
      parsed = google::protobuf::util::JsonStringToMessage(res.body, &rpc, options).ok();
    } else if (content_type.find("text/") == std::string::npos) {
      parsed = rpc.ParseFromString(res.body);
    }
    if (parsed) {
      message = rpc.message();
      retry_info_ms = RetryDelayMs(rpc);
    } else if (content_type.starts_with("text/plain")) {
      message = Excerpt(res.body);
    }
  }
  std::string reason = "http " + std::to_string(status);
  if (!message.empty()) reason += ": " + message;
  if (status >= 300 && status < 400) reason += " (redirects are not followed)";

  if (status == 429 || status == 502 || status == 503 || status == 504) {
    int retry_after_ms = ParseRetryAfter(res.Header("retry-after"));
    if (retry_after_ms < 0) retry_after_ms = retry_info_ms;
    return Retryable(std::to_string(status), std::move(reason), retry_after_ms);
  }
  return Permanent(std::to_string(status), std::move(reason));
}

class HttpExporter final : public OtlpExporter {
 public:
  HttpExporter(const Upstream& upstream, const ExporterOptions& options,
               std::vector<std::pair<std::string, std::string>> headers,
               std::shared_ptr<const net::TlsClientContext> tls)
      : target_(upstream.url.target),
        authority_(upstream.url.Authority()),
        timeout_(options.timeout),
        gzip_(options.gzip),
        connection_(upstream.url, std::move(tls)) {
    headers_.emplace_back("User-Agent", kUserAgent);
    headers_.emplace_back("Content-Type", "application/x-protobuf");
    if (gzip_) headers_.emplace_back("Content-Encoding", "gzip");
    for (auto& header : headers) headers_.push_back(std::move(header));
  }

  const char* scheme() const override { return connection_.url().tls() ? "https" : "http"; }

  ExportResult Export(const std::string& request) override {
    try {
      std::string compressed;
      if (gzip_) {
        auto gzipped = GzipCompress(request, Z_BEST_SPEED);  // the sender's CPU is the gateway's
        if (!gzipped.ok()) return Retryable("internal", gzipped.status().message());
        compressed = std::move(gzipped).value();
      }
      const std::string& body = gzip_ ? compressed : request;
      net::HttpOutcome out =
          connection_.Send("POST", target_, body, headers_, timeout_, kMaxResponseBodyBytes);
      if (!out.ok()) return Failed(*out.failure);
      return ClassifyHttp(out.reply);
    } catch (const std::exception& e) {
      connection_.Close();
      return Retryable("internal", std::string("exporter error: ") + e.what());
    } catch (...) {
      connection_.Close();
      return Retryable("internal", "exporter error");
    }
  }

 private:
  // The connection's failure in the exporter's words (docs/forwarding.md, the metrics' codes).
  ExportResult Failed(const net::HttpFailure& f) const {
    using Kind = net::HttpFailure::Kind;
    using Step = net::HttpFailure::Step;
    switch (f.kind) {
      case Kind::kTimeout: {
        const char* during = f.step == Step::kResolve     ? "resolving the host"
                             : f.step == Step::kConnect   ? "connect to"
                             : f.step == Step::kHandshake ? "TLS handshake"
                             : f.step == Step::kWrite     ? "sending the request"
                                                          : "waiting for the answer";
        return Retryable("timeout", "upstream " + authority_ + " did not answer within " +
                                        std::to_string(timeout_.count()) + " ms (" + during + ")");
      }
      case Kind::kProtocol:
      case Kind::kTooLarge:
        // Not an HTTP answer, or a broken one: is the URL pointing at an OTLP/HTTP server?
        return Retryable("protocol_error", "bad HTTP answer from " + authority_ + ": " + f.detail);
      case Kind::kInternal:
        return Retryable("internal", std::string(net::StepName(f.step)) + ": " + f.detail);
      case Kind::kConnect:
      case Kind::kTls:
        break;
    }
    const char* code = f.kind == Kind::kTls ? "tls_error" : "connect_error";
    switch (f.step) {
      case Step::kResolve:
        return Retryable(code, "cannot resolve " + connection_.url().host + ": " + f.detail);
      case Step::kConnect:
        return Retryable(code, "connect to " + authority_ + ": " + f.detail);
      case Step::kHandshake:
        return Retryable(code, "TLS handshake with " + authority_ + ": " + f.detail);
      default:
        return Retryable(code, "reading the answer from " + authority_ + ": " + f.detail);
    }
  }

  const std::string target_;
  const std::string authority_;
  const std::chrono::milliseconds timeout_;
  const bool gzip_;
  net::HeaderList headers_;
  net::HttpConnection connection_;
};

}  // namespace

std::unique_ptr<OtlpExporter> NewHttpExporter(
    const Upstream& upstream, const ExporterOptions& options,
    std::vector<std::pair<std::string, std::string>> headers,
    std::shared_ptr<const net::TlsClientContext> tls) {
  return std::make_unique<HttpExporter>(upstream, options, std::move(headers), std::move(tls));
}

}  // namespace ordertrace::forward
