#include "forward/encoder.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "otlp/decoder.h"
#include "support/otlp_requests.h"

namespace ordertrace::forward {
namespace {

using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
using opentelemetry::proto::trace::v1::Span;
using otlp::AnyValueView;
using otlp::KeyValueView;
using otlp::SpanBatch;

std::string Value(const AnyValueView& v) {
  switch (v.type) {
    case otlp::ValueType::kEmpty:
      return "empty";
    case otlp::ValueType::kString:
      return "s:" + std::string(v.str);
    case otlp::ValueType::kBytes:
      return "b:" + otlp::ToHex(reinterpret_cast<const uint8_t*>(v.str.data()), v.str.size());
    case otlp::ValueType::kBool:
      return v.bool_value ? "true" : "false";
    case otlp::ValueType::kInt:
      return "i:" + std::to_string(v.int_value);
    case otlp::ValueType::kDouble:
      return "d:" + std::to_string(v.double_value);
    case otlp::ValueType::kArray: {
      std::string out = "[";
      otlp::ForEachArrayValue(v, UINT32_MAX, [&](const AnyValueView& e) { out += Value(e) + ","; });
      return out + "]";
    }
    case otlp::ValueType::kKvList: {
      std::string out = "{";
      otlp::ForEachKeyValue(v, UINT32_MAX, [&](const KeyValueView& kv) {
        out += std::string(kv.key) + "=" + Value(kv.value) + ",";
      });
      return out + "}";
    }
  }
  return "?";
}

// Everything a consumer of the batch can see, one line per span.
std::vector<std::string> Canonical(const SpanBatch& b) {
  std::vector<std::string> out;
  auto attrs = [&](auto walk) {
    std::string s;
    walk([&](const KeyValueView& kv) { s += std::string(kv.key) + "=" + Value(kv.value) + ";"; });
    return s;
  };
  for (const auto& sp : b.spans()) {
    const auto& r = b.resources()[sp.resource];
    const auto& sc = b.scopes()[sp.scope];
    std::string line =
        otlp::ToHex(sp.trace_id) + "/" + otlp::ToHex(sp.span_id) + "/" +
        otlp::ToHex(sp.parent_span_id) + " " + std::string(sp.name) +
        " ts=" + std::string(sp.trace_state) + " k=" + std::to_string(sp.kind) +
        " t=" + std::to_string(sp.start_time_unix_nano) + ".." +
        std::to_string(sp.end_time_unix_nano) + " f=" + std::to_string(sp.flags) +
        " st=" + std::to_string(sp.status_code) + ":" + std::string(sp.status_message) +
        " da=" + std::to_string(sp.dropped_attributes) +
        " de=" + std::to_string(sp.dropped_events) + " dl=" + std::to_string(sp.dropped_links) +
        " attrs{" + attrs([&](auto fn) { b.ForEachAttribute(sp, fn); }) + "}";
    b.ForEachEvent(sp, [&](const otlp::EventView& e) {
      line += " ev(" + std::to_string(e.time_unix_nano) + " " + std::string(e.name) + " " +
              std::to_string(e.dropped_attributes) + " " +
              attrs([&](auto fn) { b.ForEachAttribute(e, fn); }) + ")";
    });
    b.ForEachLink(sp, [&](const otlp::LinkView& l) {
      line += " link(" + otlp::ToHex(l.trace_id) + " " + otlp::ToHex(l.span_id) + " " +
              std::string(l.trace_state) + " " + std::to_string(l.flags) + " " +
              std::to_string(l.dropped_attributes) + " " +
              attrs([&](auto fn) { b.ForEachAttribute(l, fn); }) + ")";
    });
    line += " res(" + std::string(r.schema_url) + " " + std::to_string(r.dropped_attributes) + " " +
            attrs([&](auto fn) { b.ForEachAttribute(r, fn); }) + ")";
    line += " scope(" + std::string(sc.name) + " " + std::string(sc.version) + " " +
            std::string(sc.schema_url) + " " + std::to_string(sc.dropped_attributes) + " " +
            attrs([&](auto fn) { b.ForEachAttribute(sc, fn); }) + ")";
    out.push_back(line);
  }
  return out;
}

std::string Id(char fill, size_t n) { return std::string(n, fill); }

// A span with every kind of field the encoder copies.
testing_support::SpanBuilder MakeSpan(const std::string& name, char id) {
  opentelemetry::proto::common::v1::AnyValue list;
  list.mutable_array_value()->add_values()->set_int_value(3);
  testing_support::SpanBuilder s(name);
  s.Ids(Id('T', 16), Id(id, 8), Id('P', 8))
      .Kind(Span::SPAN_KIND_CONSUMER)
      .Times(1'700'000'000'000'000'000ULL, 1'700'000'000'200'000'000ULL)
      .Attr("order.id", "ORD-" + name)
      .Attr("list", list)
      .Event("retry", 1'700'000'000'100'000'000ULL,
             {testing_support::Attribute("empty", opentelemetry::proto::common::v1::AnyValue())})
      .Link(Id('L', 16), Id('M', 8))
      .Status(opentelemetry::proto::trace::v1::Status::STATUS_CODE_ERROR, "boom");
  s.proto().set_flags(0x301);
  s.proto().set_trace_state("k=v");
  s.proto().mutable_links(0)->set_flags(1);
  return s;
}

ExportTraceServiceRequest Request() {
  testing_support::RequestBuilder req;
  for (int r = 0; r < 2; ++r) {
    req.Resource(r == 0 ? "crm" : "mes");
    req.resource().mutable_resource()->set_dropped_attributes_count(2);
    req.resource().set_schema_url("https://opentelemetry.io/schemas/1.26.0");
    for (int s = 0; s < 2; ++s) {
      req.Scope("scope" + std::to_string(s), "1.0");
      req.scope().set_schema_url("https://example.com/s");
      for (int i = 0; i < 3; ++i) {
        req.Add(MakeSpan(std::to_string(r) + "." + std::to_string(s) + "." + std::to_string(i),
                         static_cast<char>('a' + r * 6 + s * 3 + i)));
      }
    }
  }
  return std::move(req).Build();
}

std::shared_ptr<const SpanBatch> Decode(const std::string& wire, const otlp::Limits& limits = {}) {
  auto r = otlp::DecodeExportRequest(wire, otlp::Protocol::kGrpc, limits);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r.value() : nullptr;
}

TEST(EncoderTest, UnmodifiedBatchIsForwardedAsReceived) {
  const std::string wire = Request().SerializeAsString();
  auto b = Decode(wire);
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->modified());
  EXPECT_EQ(EncodeForForwarding(*b), wire);
}

TEST(EncoderTest, RefusedAndRepairedSpansAreReEncodedAsTheViewsShowThem) {
  ExportTraceServiceRequest req = Request();
  // Refused: an all-zero trace id (first span of resource 0, scope 1) and a whole scope's
  // spans (resource 1, scope 0), so that a scope disappears from the output.
  req.mutable_resource_spans(0)->mutable_scope_spans(1)->mutable_spans(0)->set_trace_id(
      Id('\0', 16));
  for (auto& s : *req.mutable_resource_spans(1)->mutable_scope_spans(0)->mutable_spans()) {
    s.set_start_time_unix_nano(0);
  }
  // Repaired: end before start, an over-long value, too many attributes and events.
  Span* s = req.mutable_resource_spans(0)->mutable_scope_spans(0)->mutable_spans(1);
  s->set_end_time_unix_nano(5);
  s->mutable_attributes(0)->mutable_value()->set_string_value(std::string(100, 'x'));
  for (int i = 0; i < 5; ++i) s->add_attributes()->set_key("extra" + std::to_string(i));
  for (int i = 0; i < 5; ++i) s->add_events()->set_name("more");
  otlp::Limits limits;
  limits.max_attribute_value_bytes = 10;
  limits.max_attributes = 4;
  limits.max_events_per_span = 3;

  auto original = Decode(req.SerializeAsString(), limits);
  ASSERT_TRUE(original);
  EXPECT_TRUE(original->modified());
  EXPECT_EQ(original->refused_spans(), 4u);
  const std::string forwarded = EncodeForForwarding(*original);

  ExportTraceServiceRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(forwarded));  // libprotobuf agrees it is well-formed
  EXPECT_EQ(parsed.resource_spans_size(), 2);
  EXPECT_EQ(parsed.resource_spans(1).scope_spans_size(), 1);  // the emptied scope is gone

  // Decoded again (same limits), the forwarded request shows exactly what the views showed,
  // and needs no repair any more.
  auto again = Decode(forwarded, limits);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->refused_spans(), 0u);
  EXPECT_FALSE(again->modified());
  EXPECT_EQ(Canonical(*again), Canonical(*original));
  ASSERT_EQ(again->spans().size(), 8u);
  const auto& repaired = again->spans()[1];
  EXPECT_EQ(repaired.end_time_unix_nano, repaired.start_time_unix_nano);
  EXPECT_EQ(repaired.attributes, 4u);
  EXPECT_EQ(repaired.dropped_attributes, 3u);
  EXPECT_EQ(repaired.events, 3u);
  EXPECT_EQ(repaired.dropped_events, 3u);
}

TEST(EncoderTest, TruncatedResourceAttributesAreReEncoded) {
  ExportTraceServiceRequest req = Request();
  auto* attrs = req.mutable_resource_spans(0)->mutable_resource()->mutable_attributes();
  for (int i = 0; i < 3; ++i) {
    auto* kv = attrs->Add();
    kv->set_key("host" + std::to_string(i));
    kv->mutable_value()->set_string_value("h");
  }
  otlp::Limits limits;
  limits.max_attributes = 2;
  auto original = Decode(req.SerializeAsString(), limits);
  ASSERT_TRUE(original);
  EXPECT_TRUE(original->modified());
  auto again = Decode(EncodeForForwarding(*original), limits);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->modified());
  EXPECT_EQ(Canonical(*again), Canonical(*original));
  EXPECT_EQ(again->resources()[0].attributes, 2u);
  EXPECT_EQ(again->resources()[0].dropped_attributes, 4u);  // 2 sent as dropped + 2 cut
}

}  // namespace
}  // namespace ordertrace::forward
