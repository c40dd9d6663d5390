#include "support/otlp_requests.h"

#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace ordertrace::testing_support {

namespace pb = opentelemetry::proto;

// ---- Attribute

Attribute::Attribute(std::string key, const char* value) : Attribute(key, std::string(value)) {}

Attribute::Attribute(std::string key, std::string value) {
  kv.set_key(std::move(key));
  kv.mutable_value()->set_string_value(std::move(value));
}

Attribute::Attribute(std::string key, int value) : Attribute(key, static_cast<int64_t>(value)) {}

Attribute::Attribute(std::string key, int64_t value) {
  kv.set_key(std::move(key));
  kv.mutable_value()->set_int_value(value);
}

Attribute::Attribute(std::string key, bool value) {
  kv.set_key(std::move(key));
  kv.mutable_value()->set_bool_value(value);
}

Attribute::Attribute(std::string key, double value) {
  kv.set_key(std::move(key));
  kv.mutable_value()->set_double_value(value);
}

Attribute::Attribute(std::string key, pb::common::v1::AnyValue value) {
  kv.set_key(std::move(key));
  if (value.value_case() != pb::common::v1::AnyValue::VALUE_NOT_SET)
    *kv.mutable_value() = std::move(value);
}

pb::common::v1::AnyValue ArrayValue(std::initializer_list<pb::common::v1::AnyValue> values) {
  pb::common::v1::AnyValue v;
  auto* array = v.mutable_array_value();
  for (const auto& e : values) *array->add_values() = e;
  return v;
}

pb::common::v1::AnyValue KvListValue(std::initializer_list<Attribute> entries) {
  pb::common::v1::AnyValue v;
  auto* list = v.mutable_kvlist_value();
  for (const Attribute& a : entries) *list->add_values() = a.kv;
  return v;
}

pb::common::v1::AnyValue StringValue(std::string value) {
  pb::common::v1::AnyValue v;
  v.set_string_value(std::move(value));
  return v;
}

// ---- SpanBuilder

SpanBuilder::SpanBuilder(std::string name) { span_.set_name(std::move(name)); }

SpanBuilder& SpanBuilder::Ids(std::string trace_id, std::string span_id,
                              std::string parent_span_id) {
  span_.set_trace_id(std::move(trace_id));
  span_.set_span_id(std::move(span_id));
  if (!parent_span_id.empty()) span_.set_parent_span_id(std::move(parent_span_id));
  return *this;
}

SpanBuilder& SpanBuilder::Kind(pb::trace::v1::Span::SpanKind kind) {
  span_.set_kind(kind);
  return *this;
}

SpanBuilder& SpanBuilder::Times(uint64_t start_unix_nano, uint64_t end_unix_nano) {
  span_.set_start_time_unix_nano(start_unix_nano);
  span_.set_end_time_unix_nano(end_unix_nano);
  return *this;
}

SpanBuilder& SpanBuilder::Attr(Attribute attribute) {
  *span_.add_attributes() = std::move(attribute.kv);
  return *this;
}

SpanBuilder& SpanBuilder::Event(std::string name, uint64_t time_unix_nano,
                                const std::vector<Attribute>& attributes) {
  auto* event = span_.add_events();
  event->set_name(std::move(name));
  event->set_time_unix_nano(time_unix_nano);
  for (const Attribute& a : attributes) *event->add_attributes() = a.kv;
  return *this;
}

SpanBuilder& SpanBuilder::Link(std::string trace_id, std::string span_id,
                               const std::vector<Attribute>& attributes) {
  auto* link = span_.add_links();
  link->set_trace_id(std::move(trace_id));
  link->set_span_id(std::move(span_id));
  for (const Attribute& a : attributes) *link->add_attributes() = a.kv;
  return *this;
}

SpanBuilder& SpanBuilder::Status(pb::trace::v1::Status::StatusCode code, std::string message) {
  span_.mutable_status()->set_code(code);
  if (!message.empty()) span_.mutable_status()->set_message(std::move(message));
  return *this;
}

// ---- RequestBuilder

RequestBuilder& RequestBuilder::Resource(std::string_view service,
                                         std::initializer_list<Attribute> attributes) {
  auto* rs = request_.add_resource_spans();
  if (!service.empty())
    *rs->mutable_resource()->add_attributes() = Attribute("service.name", std::string(service)).kv;
  for (const Attribute& a : attributes) *rs->mutable_resource()->add_attributes() = a.kv;
  return *this;
}

RequestBuilder& RequestBuilder::Scope(std::string_view name, std::string_view version,
                                      std::initializer_list<Attribute> attributes) {
  auto* ss = resource().add_scope_spans();
  if (!name.empty()) ss->mutable_scope()->set_name(std::string(name));
  if (!version.empty()) ss->mutable_scope()->set_version(std::string(version));
  for (const Attribute& a : attributes) *ss->mutable_scope()->add_attributes() = a.kv;
  return *this;
}

RequestBuilder& RequestBuilder::Add(const SpanBuilder& span) { return Add(span.span()); }

RequestBuilder& RequestBuilder::Add(const pb::trace::v1::Span& span) {
  *scope().add_spans() = span;
  return *this;
}

pb::trace::v1::ResourceSpans& RequestBuilder::resource() {
  if (request_.resource_spans_size() == 0) request_.add_resource_spans();
  return *request_.mutable_resource_spans(request_.resource_spans_size() - 1);
}

pb::trace::v1::ScopeSpans& RequestBuilder::scope() {
  auto& rs = resource();
  if (rs.scope_spans_size() == 0) rs.add_scope_spans();
  return *rs.mutable_scope_spans(rs.scope_spans_size() - 1);
}

// ---- OTLP/JSON

namespace {

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "otlp_requests: %s\n", why.c_str());
  std::abort();
}

std::string Base64Decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t bits = 0;
  int n = 0;
  for (char c : in) {
    if (c == '=') break;
    const int v = value(c);
    if (v < 0) Die("bad base64 from protobuf: " + in);
    bits = (bits << 6) | static_cast<uint32_t>(v);
    n += 6;
    if (n >= 8) {
      n -= 8;
      out.push_back(static_cast<char>((bits >> n) & 0xff));
    }
  }
  return out;
}

std::string Hex(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// protobuf's JSON mapping writes bytes as base64; OTLP/JSON writes trace and span ids as hex.
void IdsToHex(nlohmann::json& j) {
  if (j.is_array()) {
    for (auto& e : j) IdsToHex(e);
    return;
  }
  if (!j.is_object()) return;
  for (auto& [key, value] : j.items()) {
    if ((key == "traceId" || key == "spanId" || key == "parentSpanId") && value.is_string())
      value = Hex(Base64Decode(value.get<std::string>()));
    else
      IdsToHex(value);
  }
}

}  // namespace

std::string ToOtlpJson(const pb::collector::trace::v1::ExportTraceServiceRequest& request) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_enums_as_ints = true;
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(request, &text, options).ok())
    Die("cannot print the request as JSON");
  nlohmann::json j = nlohmann::json::parse(text);
  IdsToHex(j);
  return j.dump();
}

std::string IdFromHex(std::string_view hex) {
  auto digit = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    Die("bad hex id: " + std::string(hex));
  };
  if (hex.size() % 2 != 0) Die("odd hex id: " + std::string(hex));
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2)
    out.push_back(static_cast<char>(digit(hex[i]) * 16 + digit(hex[i + 1])));
  return out;
}

std::string OneSpanRequest(std::string_view service) {
  RequestBuilder req;
  req.Resource(service).Scope();
  req.Add(SpanBuilder("POST /orders")
              .Ids(std::string(16, '\x11'), std::string(8, '\x22'))
              .Times(1'700'000'000'000'000'000ull, 1'700'000'000'010'000'000ull));
  return req.Serialized();
}

}  // namespace ordertrace::testing_support
