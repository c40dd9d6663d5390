#include "pipeline/span_log_stage.h"

#include <gtest/gtest.h>

#include <string>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "otlp/decoder.h"
#include "support/otlp_requests.h"

namespace ordertrace::pipeline {
namespace {

namespace pb = opentelemetry::proto;

using testing_support::RequestBuilder;

testing_support::SpanBuilder MakeSpan(uint8_t id) {
  return testing_support::SpanBuilder("span-" + std::to_string(id))
      .Ids(std::string(15, '\x01') + static_cast<char>(id),
           std::string(7, '\x02') + static_cast<char>(id))
      .Times(1'700'000'000'000'000'000ull, 1'700'000'000'005'000'000ull);
}

std::shared_ptr<const otlp::SpanBatch> Decode(
    const pb::collector::trace::v1::ExportTraceServiceRequest& req) {
  auto batch = otlp::DecodeExportRequest(req.SerializeAsString(), otlp::Protocol::kHttpProtobuf,
                                         otlp::Limits{});
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  return batch.ok() ? batch.value() : nullptr;
}

TEST(SpanLogStageTest, SummarizesServicesOrdersStagesAndErrors) {
  const auto req = RequestBuilder()
                       .Resource("crm")
                       .Scope("test")
                       .Add(MakeSpan(1)
                                .Attr("order.id", "O-1")
                                .Attr("order.stage", "SUBMITTED")
                                .Attr("partner.id", "P-secret"))
                       .Add(MakeSpan(2).Attr("order.id", "O-1"))  // repeated: listed once
                       .Resource("mes")
                       .Scope("test")
                       .Add(MakeSpan(3)
                                .Attr("order.id", 42)
                                .Attr("order.stage", "PRICE_CALCULATED")
                                .Status(pb::trace::v1::Status::STATUS_CODE_ERROR))
                       .Add(MakeSpan(4))  // no order attributes
                       .Build();

  auto batch = Decode(req);
  ASSERT_TRUE(batch);
  BatchSummary sum = Summarize(*batch, SpanLogOptions{});
  EXPECT_EQ(sum.spans, 4u);
  EXPECT_EQ(sum.error_spans, 1u);
  EXPECT_EQ(sum.services, (std::vector<std::string>{"crm", "mes"}));
  EXPECT_EQ(sum.orders, (std::vector<std::string>{"O-1", "42"}));
  EXPECT_EQ(sum.stages, (std::vector<std::string>{"SUBMITTED", "PRICE_CALCULATED"}));
  EXPECT_EQ(sum.orders_more, 0u);

  // The stage itself must log without trouble, per batch and per span.
  SpanLogOptions verbose;
  verbose.log_spans = true;
  SpanLogStage(verbose).Process(batch);
}

TEST(SpanLogStageTest, ListsAreCappedAndKeysConfigurable) {
  RequestBuilder req;
  req.Resource("crm").Scope("test");
  for (uint8_t i = 1; i <= 12; ++i)
    req.Add(MakeSpan(i).Attr("shop.order", "O-" + std::to_string(i)));
  auto batch = Decode(req.Build());
  ASSERT_TRUE(batch);
  SpanLogOptions options;
  options.order_key = "shop.order";
  options.max_listed = 5;
  BatchSummary sum = Summarize(*batch, options);
  EXPECT_EQ(sum.orders.size(), 5u);
  EXPECT_EQ(sum.orders.front(), "O-1");
  EXPECT_EQ(sum.orders_more, 7u);
}

TEST(SpanLogStageTest, EmptyBatch) {
  pb::collector::trace::v1::ExportTraceServiceRequest req;
  auto batch = Decode(req);
  ASSERT_TRUE(batch);
  BatchSummary sum = Summarize(*batch, SpanLogOptions{});
  EXPECT_EQ(sum.spans, 0u);
  EXPECT_TRUE(sum.services.empty());
  SpanLogStage(SpanLogOptions{}).Process(batch);
}

TEST(SpanLogStageTest, ValueForLog) {
  otlp::AnyValueView v;
  v.type = otlp::ValueType::kString;
  v.str = "short";
  EXPECT_EQ(ValueForLog(v, 10), "short");
  v.str = "h\xC3\xA9llo";  // "héllo": a cut inside é keeps the whole character out
  EXPECT_EQ(ValueForLog(v, 2), "h\xE2\x80\xA6");
  v.type = otlp::ValueType::kInt;
  v.int_value = -7;
  EXPECT_EQ(ValueForLog(v, 10), "-7");
  v.type = otlp::ValueType::kBool;
  v.bool_value = true;
  EXPECT_EQ(ValueForLog(v, 10), "true");
  v.type = otlp::ValueType::kDouble;
  v.double_value = 1.5;
  EXPECT_EQ(ValueForLog(v, 10), "1.5");
  v.type = otlp::ValueType::kBytes;
  EXPECT_EQ(ValueForLog(v, 10), "");
}

}  // namespace
}  // namespace ordertrace::pipeline
