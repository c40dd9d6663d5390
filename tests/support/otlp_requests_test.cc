// The request builders: they set exactly what they are told, and ToOtlpJson() writes what the
// gateway's OTLP/JSON reader turns back into the same request.
#include "support/otlp_requests.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "otlp/json.h"

namespace ordertrace::testing_support {
namespace {

namespace pb = opentelemetry::proto;

const std::string kTrace = IdFromHex("5b8efff798038103d269b633813fc60c");
const std::string kSpan = IdFromHex("eee19b7ec3c1b174");
const std::string kParent = IdFromHex("eee19b7ec3c1b173");

pb::collector::trace::v1::ExportTraceServiceRequest Everything() {
  pb::common::v1::AnyValue list;
  list.mutable_array_value()->add_values()->set_int_value(3);
  return RequestBuilder()
      .Resource("crm", {{"host.name", "crm-1"}})
      .Scope("ordertrace-test", "1.0")
      .Add(SpanBuilder("create order")
               .Ids(kTrace, kSpan, kParent)
               .Kind(pb::trace::v1::Span::SPAN_KIND_SERVER)
               .Times(1'700'000'000'000'000'000ULL, 1'700'000'001'000'000'000ULL)
               .Attr("order.id", "ORD-1")
               .Attr("http.response.status_code", 503)
               .Attr("ordertrace.heartbeat", true)
               .Attr("ratio", 0.5)
               .Attr("list", list)
               .Event("retry", 1'700'000'000'500'000'000ULL, {{"attempt", 2}})
               .Link(kTrace, kParent, {{"why", "follows"}})
               .Status(pb::trace::v1::Status::STATUS_CODE_ERROR, "boom"))
      .Resource("mes")
      .Add(SpanBuilder("calculate price").Ids(kTrace, kParent))
      .Build();
}

TEST(OtlpRequestsTest, BuildsExactlyWhatItIsTold) {
  const auto req = Everything();
  ASSERT_EQ(req.resource_spans_size(), 2);
  const auto& crm = req.resource_spans(0);
  ASSERT_EQ(crm.resource().attributes_size(), 2);
  EXPECT_EQ(crm.resource().attributes(0).key(), "service.name");
  EXPECT_EQ(crm.resource().attributes(0).value().string_value(), "crm");
  EXPECT_EQ(crm.scope_spans(0).scope().name(), "ordertrace-test");
  EXPECT_EQ(crm.scope_spans(0).scope().version(), "1.0");
  const auto& span = crm.scope_spans(0).spans(0);
  EXPECT_EQ(span.trace_id(), kTrace);
  EXPECT_EQ(span.parent_span_id(), kParent);
  ASSERT_EQ(span.attributes_size(), 5);
  EXPECT_EQ(span.attributes(1).value().int_value(), 503);
  EXPECT_TRUE(span.attributes(2).value().bool_value());
  EXPECT_EQ(span.attributes(3).value().double_value(), 0.5);
  EXPECT_EQ(span.events(0).attributes(0).value().int_value(), 2);
  EXPECT_EQ(span.links(0).span_id(), kParent);
  EXPECT_EQ(span.status().message(), "boom");
  // A span added without a scope goes into a bare one; unset fields stay unset.
  const auto& mes = req.resource_spans(1);
  ASSERT_EQ(mes.scope_spans_size(), 1);
  EXPECT_FALSE(mes.scope_spans(0).has_scope());
  EXPECT_FALSE(mes.scope_spans(0).spans(0).has_status());
  EXPECT_EQ(mes.scope_spans(0).spans(0).kind(), pb::trace::v1::Span::SPAN_KIND_UNSPECIFIED);
}

TEST(OtlpRequestsTest, JsonReadsBackAsTheSameRequest) {
  const auto req = Everything();
  const std::string json = ToOtlpJson(req);
  EXPECT_NE(json.find("\"traceId\":\"5b8efff798038103d269b633813fc60c\""), std::string::npos)
      << json;
  auto wire = otlp::JsonToWire(json);
  ASSERT_TRUE(wire.ok()) << wire.status().ToString();
  pb::collector::trace::v1::ExportTraceServiceRequest back;
  ASSERT_TRUE(back.ParseFromString(*wire));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(req, back))
      << req.DebugString() << "\n---\n"
      << back.DebugString();
}

TEST(OtlpRequestsTest, ScopeAttributesAndNestedValues) {
  const auto req =
      RequestBuilder()
          .Scope("lib", "2", {{"scope.kind", "test"}})
          .Add(SpanBuilder("s").Attr(
              "nested",
              KvListValue({{"a", ArrayValue({StringValue("x"), StringValue("y")})}, {"b", 7}})))
          .Build();
  const auto& scope = req.resource_spans(0).scope_spans(0).scope();
  EXPECT_EQ(scope.name(), "lib");
  ASSERT_EQ(scope.attributes_size(), 1);
  EXPECT_EQ(scope.attributes(0).value().string_value(), "test");
  const auto& kv = req.resource_spans(0).scope_spans(0).spans(0).attributes(0).value();
  ASSERT_EQ(kv.kvlist_value().values_size(), 2);
  const auto& a = kv.kvlist_value().values(0);
  EXPECT_EQ(a.key(), "a");
  ASSERT_EQ(a.value().array_value().values_size(), 2);
  EXPECT_EQ(a.value().array_value().values(1).string_value(), "y");
  EXPECT_EQ(kv.kvlist_value().values(1).value().int_value(), 7);
  // A scope with attributes only is still set.
  EXPECT_TRUE(RequestBuilder()
                  .Scope("", "", {{"k", "v"}})
                  .Build()
                  .resource_spans(0)
                  .scope_spans(0)
                  .has_scope());
}

}  // namespace
}  // namespace ordertrace::testing_support
