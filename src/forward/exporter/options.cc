#include "forward/exporter/options.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>

#include "common/log.h"
#include "google/rpc/status.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace ordertrace::forward {
namespace {

namespace collector = opentelemetry::proto::collector::trace::v1;

constexpr const char* kDefaultHttpPath = "/v1/traces";

bool IsTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

}  // namespace

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

Result<Upstream> ParseUpstream(const std::string& text) {
  net::UrlOptions options;
  options.what = "upstream URL";
  options.schemes = {"grpc", "grpcs", "http", "https"};
  options.usage =
      "grpc://host:port, grpcs://host:port, http://host:port/v1/traces or "
      "https://host:port/v1/traces";
  auto parsed = net::ParseUrl(text, options);
  if (!parsed.ok()) return parsed.status();
  Upstream up;
  up.url = std::move(parsed).value();
  up.grpc = up.url.scheme == "grpc" || up.url.scheme == "grpcs";
  auto error = [&](const std::string& what) {
    return Status::InvalidArgument("upstream URL '" + net::RedactUrl(text) + "': " + what);
  };
  if (up.grpc) {
    if (!up.url.explicit_port) {
      return error("the port is missing (" + up.url.scheme + "://host:port, e.g. :4317)");
    }
    if (!up.url.target.empty() && up.url.target != "/") {
      return error("a gRPC URL has no path or query (got '" + up.url.target + "')");
    }
    up.url.target.clear();
  } else if (up.url.target.empty() || up.url.target == "/") {
    up.url.target = kDefaultHttpPath;
  } else if (up.url.target.front() == '?') {
    up.url.target = kDefaultHttpPath + up.url.target;
  }
  return up;
}

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

int ClampRetryAfter(int64_t ms) {
  return static_cast<int>(std::clamp<int64_t>(ms, 0, kMaxRetryAfterMs));
}

ExportResult Retryable(std::string code, std::string reason, int retry_after_ms) {
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

}  // namespace ordertrace::forward
