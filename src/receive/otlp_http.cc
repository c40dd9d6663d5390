// OTLP/HTTP trace receiver: POST /v1/traces, binary protobuf and JSON.  Status codes,
// bodies and throttling follow the OTLP specification; docs/receivers.md lists every case.

#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "google/rpc/status.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "otlp/decoder.h"
#include "otlp/json.h"
#include "receive/otlp_receivers.h"
#include "receive/outcome.h"

namespace ordertrace::receive {
namespace {

namespace collector = opentelemetry::proto::collector::trace::v1;

constexpr const char* kTracesPath = "/v1/traces";
constexpr const char* kProtobufType = "application/x-protobuf";
constexpr const char* kJsonType = "application/json";

// google.rpc.Code values used in error bodies.
constexpr int kRpcInvalidArgument = 3;
constexpr int kRpcPermissionDenied = 7;
constexpr int kRpcInternal = 13;
constexpr int kRpcUnauthenticated = 16;

enum class Encoding { kProtobuf, kJson, kOther };

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// The media type of a Content-Type header, lower-cased, parameters ("; charset=utf-8") cut.
Encoding ParseContentType(std::string_view header) {
  const size_t semi = header.find(';');
  std::string_view type = header.substr(0, semi);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  std::string lower(type);
  for (char& c : lower) c = ToLower(c);
  if (lower == kProtobufType) return Encoding::kProtobuf;
  if (lower == kJsonType) return Encoding::kJson;
  return Encoding::kOther;
}

otlp::Protocol ProtocolOf(Encoding e) {
  // A request in neither encoding is counted as http_protobuf, OTLP/HTTP's default.
  return e == Encoding::kJson ? otlp::Protocol::kHttpJson : otlp::Protocol::kHttpProtobuf;
}

int RetryAfterSeconds(int retry_after_ms) {
  return retry_after_ms <= 1000 ? 1 : (retry_after_ms + 999) / 1000;
}

// Encodes `msg` as the body of `res` in the request's encoding (binary protobuf unless the
// request was JSON).
void SetMessageBody(const google::protobuf::Message& msg, Encoding enc, net::HttpResponse& res) {
  if (enc == Encoding::kJson) {
    res.content_type = kJsonType;
    res.body.clear();
    if (!google::protobuf::util::MessageToJsonString(msg, &res.body).ok()) res.body = "{}";
  } else {
    res.content_type = kProtobufType;
    res.body = msg.SerializeAsString();
  }
}

// 4xx/5xx bodies are a google.rpc.Status (OTLP specification, "Failures").
void SetErrorBody(int http_status, int rpc_code, const std::string& message, int retry_after_ms,
                  Encoding enc, net::HttpResponse& res) {
  google::rpc::Status status;
  status.set_code(rpc_code);
  status.set_message(message);
  if (retry_after_ms > 0) {
    google::rpc::RetryInfo retry;
    retry.mutable_retry_delay()->set_seconds(retry_after_ms / 1000);
    retry.mutable_retry_delay()->set_nanos((retry_after_ms % 1000) * 1000000);
    status.add_details()->PackFrom(retry);
    res.headers.emplace_back("Retry-After", std::to_string(RetryAfterSeconds(retry_after_ms)));
  }
  res.status = http_status;
  SetMessageBody(status, enc, res);
}

class OtlpHttpReceiver {
 public:
  OtlpHttpReceiver(const OtlpReceiverOptions& options, pipeline::BatchSink* sink,
                   ReceiverMetrics* metrics)
      : options_(options), sink_(sink), metrics_(metrics) {
    if (!options_.auth) options_.auth = std::make_shared<const IngestAuthenticator>();
  }

  void Handle(net::HttpRequest& req, net::HttpResponse& res) const {
    const auto start = std::chrono::steady_clock::now();
    const Encoding enc = ParseContentType(req.Header("content-type"));
    const otlp::Protocol protocol = ProtocolOf(enc);
    std::optional<IngestAuthResult> auth;  // set once the credentials were looked at
    try {
      HandleRequest(req, enc, protocol, res, &auth);
    } catch (const std::exception& e) {
      Internal(req, protocol, enc, e.what(), res);
    } catch (...) {
      Internal(req, protocol, enc, "unknown exception", res);
    }
    if (auth && options_.auth->enabled()) metrics_->Auth(protocol, *auth);
    metrics_->Request(protocol, std::to_string(res.status));
    metrics_->Duration(
        protocol, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  // Before the body is decoded: refuses a request without valid credentials (401), so that an
  // unauthenticated client cannot make the server gunzip its body.
  bool Guard(const net::HttpRequest& req, net::HttpResponse& res) const {
    if (!options_.auth->enabled()) return true;
    const IngestCaller caller = Authenticate(req);
    if (caller.result == IngestAuthResult::kOk) return true;
    const Encoding enc = ParseContentType(req.Header("content-type"));
    const otlp::Protocol protocol = ProtocolOf(enc);
    metrics_->Bytes(protocol, req.received_bytes);
    metrics_->Auth(protocol, caller.result);
    metrics_->Refused(protocol, "unauthenticated", 1);
    Unauthenticated(enc, res);
    metrics_->Request(protocol, std::to_string(res.status));
    return false;
  }

  // Requests the HTTP server refused before Handle (body over the limit, unknown
  // Content-Encoding, corrupt gzip): counted, and answered with a Status body.
  void Rejected(const net::HttpRequest& req, net::HttpResponse& res) const {
    const Encoding enc = ParseContentType(req.Header("content-type"));
    const otlp::Protocol protocol = ProtocolOf(enc);
    const char* reason = res.status == 413   ? "too_large"
                         : res.status == 415 ? "unsupported"
                                             : "malformed";
    metrics_->Bytes(protocol, req.received_bytes);
    metrics_->Refused(protocol, reason, 1);
    metrics_->Request(protocol, std::to_string(res.status));
    std::string message = res.body;
    while (!message.empty() && message.back() == '\n') message.pop_back();
    SetErrorBody(res.status, kRpcInvalidArgument, message, 0,
                 enc == Encoding::kOther ? Encoding::kProtobuf : enc, res);
  }

 private:
  void HandleRequest(net::HttpRequest& req, Encoding enc, otlp::Protocol protocol,
                     net::HttpResponse& res, std::optional<IngestAuthResult>* auth) const {
    metrics_->Bytes(protocol, req.received_bytes);
    // Checked again (the guard refused the others before their body was decoded); hashing a
    // token is cheap.
    const IngestCaller caller = Authenticate(req);
    *auth = caller.result;
    if (caller.result != IngestAuthResult::kOk) {  // not reached: the guard answered it
      metrics_->Refused(protocol, "unauthenticated", 1);
      Unauthenticated(enc, res);
      return;
    }
    if (enc == Encoding::kOther) {
      metrics_->Refused(protocol, "unsupported", 1);
      const std::string got(req.Header("content-type"));
      SetErrorBody(
          415, kRpcInvalidArgument,
          "unsupported Content-Type \"" + got + "\": use " + kProtobufType + " or " + kJsonType, 0,
          Encoding::kProtobuf, res);
      return;
    }
    if (req.body.size() > options_.max_body_bytes) {
      metrics_->Refused(protocol, "too_large", 1);
      SetErrorBody(
          413, kRpcInvalidArgument,
          "request body exceeds the limit of " + std::to_string(options_.max_body_bytes) + " bytes",
          0, enc, res);
      return;
    }

    std::string wire;
    if (enc == Encoding::kJson) {
      auto converted = otlp::JsonToWire(req.body);
      if (!converted.ok()) {
        Malformed(protocol, enc, converted.status().message(), res);
        return;
      }
      wire = std::move(converted).value();
    } else {
      wire = std::move(req.body);
    }
    auto decoded = options_.decoder != nullptr
                       ? options_.decoder->Decode(std::move(wire), protocol, options_.limits)
                       : otlp::DecodeExportRequest(std::move(wire), protocol, options_.limits);
    if (!decoded.ok()) {
      Malformed(protocol, enc, decoded.status().message(), res);
      return;
    }
    std::shared_ptr<const otlp::SpanBatch> batch = std::move(decoded).value();
    if (!options_.auth->MaySend(caller, *batch)) {
      *auth = IngestAuthResult::kForbiddenService;
      metrics_->Refused(protocol, "forbidden_service",
                        batch->spans().size() + batch->refused_spans());
      SetErrorBody(403, kRpcPermissionDenied,
                   "these credentials may not send spans for a service.name in this request", 0,
                   enc, res);
      return;
    }

    // A batch whose every span was refused is answered without bothering the pipeline.
    const Status accepted = batch->spans().empty() ? Status::Ok() : sink_->Accept(batch);
    if (!accepted.ok()) {
      // The whole request is refused and will be retried: nothing in it counts as accepted.
      const RefusalAnswer answer = AnswerRefusal(
          accepted, protocol, batch->spans().size() + batch->refused_spans(), *metrics_);
      SetErrorBody(answer.http_status, answer.rpc_code, answer.message, answer.retry_after_ms, enc,
                   res);
      return;
    }

    metrics_->RecordBatch(*batch);
    collector::ExportTraceServiceResponse response;
    if (batch->refused_spans() > 0) {
      auto* partial = response.mutable_partial_success();
      partial->set_rejected_spans(static_cast<int64_t>(batch->refused_spans()));
      partial->set_error_message(batch->refusal_message());
    }
    res.status = 200;
    SetMessageBody(response, enc, res);
  }

  // 401 (RFC 6750: WWW-Authenticate: Bearer in bearer mode) with an UNAUTHENTICATED body.
  void Unauthenticated(Encoding enc, net::HttpResponse& res) const {
    const bool bearer = options_.auth->mode() == IngestAuthMode::kBearer;
    if (bearer) res.headers.emplace_back("WWW-Authenticate", "Bearer");
    SetErrorBody(401, kRpcUnauthenticated,
                 bearer ? "missing or invalid ingest token (Authorization: Bearer)"
                        : "the client certificate is not a known ingest identity",
                 0, enc == Encoding::kOther ? Encoding::kProtobuf : enc, res);
  }

  IngestCaller Authenticate(const net::HttpRequest& req) const {
    std::vector<std::string_view> authorization;
    for (const auto& [name, value] : req.headers) {
      if (name == "authorization") authorization.push_back(value);
    }
    return options_.auth->Authenticate(authorization, req.tls_peer);
  }

  void Malformed(otlp::Protocol protocol, Encoding enc, const std::string& reason,
                 net::HttpResponse& res) const {
    metrics_->Refused(protocol, "malformed", 1);
    SetErrorBody(400, kRpcInvalidArgument, reason, 0, enc, res);
  }

  void Internal(const net::HttpRequest& req, otlp::Protocol protocol, Encoding enc,
                const char* what, net::HttpResponse& res) const {
    log::Error("OTLP/HTTP request failed",
               {{"protocol", otlp::ProtocolName(protocol)}, {"peer", req.peer}, {"error", what}});
    metrics_->Refused(protocol, "internal", 1);
    res = net::HttpResponse{};
    SetErrorBody(500, kRpcInternal, "internal error", 0, enc, res);
  }

  OtlpReceiverOptions options_;  // auth set (mode none when not configured)
  pipeline::BatchSink* const sink_;
  ReceiverMetrics* const metrics_;
};

}  // namespace

void RegisterOtlpHttp(net::HttpServer& server, const OtlpReceiverOptions& options,
                      pipeline::BatchSink* sink, ReceiverMetrics* metrics) {
  auto receiver = std::make_shared<const OtlpHttpReceiver>(options, sink, metrics);
  server.Route("POST", kTracesPath, [receiver](net::HttpRequest& req, net::HttpResponse& res) {
    receiver->Handle(req, res);
  });
  server.Guard(kTracesPath, [receiver](const net::HttpRequest& req, net::HttpResponse& res) {
    return receiver->Guard(req, res);
  });
  server.OnReject(kTracesPath, [receiver](const net::HttpRequest& req, net::HttpResponse& res) {
    receiver->Rejected(req, res);
  });
}

}  // namespace ordertrace::receive
