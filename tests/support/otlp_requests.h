// Builders for OTLP ExportTraceServiceRequests in tests and benchmarks, so no test spells out
// the protobuf by hand: RequestBuilder adds resources, scopes and spans; SpanBuilder fills one
// span (ids, kind, times, attributes, events, links, status).  Only what is set is set: a span
// without Kind() has none, a resource without attributes has none, so a request is exactly what
// the builder calls say.  ToOtlpJson() writes a request as OTLP/JSON text (hex ids, integer
// enums, 64-bit integers as strings), as an OTLP/HTTP client sends it.
//
//   ExportTraceServiceRequest req = RequestBuilder()
//       .Resource("crm")
//       .Scope("ordertrace-test", "1.0")
//       .Add(SpanBuilder("create order").Ids(trace_id, span_id).Attr("order.id", "ORD-1"))
//       .Build();
//
// Thread-safety: builders are values; use each from one thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "opentelemetry/proto/common/v1/common.pb.h"
#include "opentelemetry/proto/trace/v1/trace.pb.h"

namespace ordertrace::testing_support {

// An attribute; the value type follows the C++ type (a string literal is a string, not a bool).
struct Attribute {
  Attribute(std::string key, const char* value);
  Attribute(std::string key, std::string value);
  Attribute(std::string key, int value);
  Attribute(std::string key, int64_t value);
  Attribute(std::string key, bool value);
  Attribute(std::string key, double value);
  // An attribute with `value` as its AnyValue (arrays, maps, bytes, or no value at all).
  Attribute(std::string key, opentelemetry::proto::common::v1::AnyValue value);

  opentelemetry::proto::common::v1::KeyValue kv;
};

// One span.
class SpanBuilder {
 public:
  explicit SpanBuilder(std::string name);

  // Raw ids (16 and 8 bytes; any length is kept as given, for tests of invalid ones).  An empty
  // parent leaves parent_span_id unset.
  SpanBuilder& Ids(std::string trace_id, std::string span_id, std::string parent_span_id = {});
  SpanBuilder& Kind(opentelemetry::proto::trace::v1::Span::SpanKind kind);
  SpanBuilder& Times(uint64_t start_unix_nano, uint64_t end_unix_nano);
  SpanBuilder& Attr(Attribute attribute);
  template <typename V>
  SpanBuilder& Attr(std::string key, V value) {
    return Attr(Attribute(std::move(key), std::move(value)));
  }
  SpanBuilder& Event(std::string name, uint64_t time_unix_nano,
                     const std::vector<Attribute>& attributes = {});
  SpanBuilder& Link(std::string trace_id, std::string span_id,
                    const std::vector<Attribute>& attributes = {});
  SpanBuilder& Status(opentelemetry::proto::trace::v1::Status::StatusCode code,
                      std::string message = {});
  // For what has no setter here (flags, trace state, dropped counts, ...).
  opentelemetry::proto::trace::v1::Span& proto() { return span_; }
  const opentelemetry::proto::trace::v1::Span& span() const { return span_; }

 private:
  opentelemetry::proto::trace::v1::Span span_;
};

// A request: resources, each with scopes, each with spans, in the order they are added.
class RequestBuilder {
 public:
  // Starts a resource; `service` (unless empty) becomes its service.name attribute, followed by
  // `attributes`.  Resource() alone adds a resource_spans without a resource.
  RequestBuilder& Resource(std::string_view service = {},
                           std::initializer_list<Attribute> attributes = {});
  // Starts a scope in the current resource (one without attributes if none was started); an
  // empty name leaves the scope unset unless `attributes` are given.
  RequestBuilder& Scope(std::string_view name = {}, std::string_view version = {},
                        std::initializer_list<Attribute> attributes = {});
  // Adds a span to the current scope (starting a bare resource and scope as needed).
  RequestBuilder& Add(const SpanBuilder& span);
  RequestBuilder& Add(const opentelemetry::proto::trace::v1::Span& span);

  // The current resource and scope, for what has no setter here (schema URLs, dropped counts).
  opentelemetry::proto::trace::v1::ResourceSpans& resource();
  opentelemetry::proto::trace::v1::ScopeSpans& scope();

  opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest Build() const& {
    return request_;
  }
  opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest Build() && {
    return std::move(request_);
  }
  // The request in protobuf encoding.
  std::string Serialized() const { return request_.SerializeAsString(); }

 private:
  opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest request_;
};

// AnyValues for attributes with nested values: an array of `values`, a key-value list of
// `entries`, one string.
opentelemetry::proto::common::v1::AnyValue ArrayValue(
    std::initializer_list<opentelemetry::proto::common::v1::AnyValue> values);
opentelemetry::proto::common::v1::AnyValue KvListValue(std::initializer_list<Attribute> entries);
opentelemetry::proto::common::v1::AnyValue StringValue(std::string value);

// A request of one span ("POST /orders", fixed ids and times) from `service`, in protobuf
// encoding: for tests about who may send, not about what is sent.
std::string OneSpanRequest(std::string_view service);

// `request` as OTLP/JSON (lowerCamelCase names, hex trace and span ids, enums as integers).
std::string ToOtlpJson(
    const opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest& request);

// Raw id bytes from hex ("5b8e..." → 16 bytes); aborts the test program on bad hex.
std::string IdFromHex(std::string_view hex);

}  // namespace ordertrace::testing_support
