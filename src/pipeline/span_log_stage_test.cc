#include "pipeline/span_log_stage.h"

#include <gtest/gtest.h>

#include <string>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "otlp/decoder.h"

namespace ordertrace::pipeline {
namespace {

namespace pb = opentelemetry::proto;

void SetString(pb::common::v1::KeyValue* kv, const std::string& key, const std::string& value) {
  kv->set_key(key);
  kv->mutable_value()->set_string_value(value);
}

pb::trace::v1::Span* AddSpan(pb::trace::v1::ResourceSpans* rs, uint8_t id) {
  auto* span = rs->mutable_scope_spans(0)->add_spans();
  span->set_trace_id(std::string(15, '\x01') + static_cast<char>(id));
  span->set_span_id(std::string(7, '\x02') + static_cast<char>(id));
  span->set_name("span-" + std::to_string(id));
  span->set_start_time_unix_nano(1'700'000'000'000'000'000ull);
  span->set_end_time_unix_nano(1'700'000'000'005'000'000ull);
  return span;
}

pb::trace::v1::ResourceSpans* AddResource(pb::collector::trace::v1::ExportTraceServiceRequest* req,
                                          const std::string& service) {
  auto* rs = req->add_resource_spans();
  SetString(rs->mutable_resource()->add_attributes(), "service.name", service);
  rs->add_scope_spans()->mutable_scope()->set_name("test");
  return rs;
}

std::shared_ptr<const otlp::SpanBatch> Decode(
    const pb::collector::trace::v1::ExportTraceServiceRequest& req) {
  auto batch = otlp::DecodeExportRequest(req.SerializeAsString(), otlp::Protocol::kHttpProtobuf,
                                         otlp::Limits{});
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  return batch.ok() ? batch.value() : nullptr;
}

TEST(SpanLogStageTest, SummarizesServicesOrdersStagesAndErrors) {
  pb::collector::trace::v1::ExportTraceServiceRequest req;
  auto* crm = AddResource(&req, "crm");
  auto* s1 = AddSpan(crm, 1);
  SetString(s1->add_attributes(), "order.id", "O-1");
  SetString(s1->add_attributes(), "order.stage", "SUBMITTED");
  SetString(s1->add_attributes(), "partner.id", "P-secret");
  auto* s2 = AddSpan(crm, 2);
  SetString(s2->add_attributes(), "order.id", "O-1");  // repeated: listed once
  auto* mes = AddResource(&req, "mes");
  auto* s3 = AddSpan(mes, 3);
  auto* int_id = s3->add_attributes();
  int_id->set_key("order.id");
  int_id->mutable_value()->set_int_value(42);
  SetString(s3->add_attributes(), "order.stage", "PRICE_CALCULATED");
  s3->mutable_status()->set_code(pb::trace::v1::Status::STATUS_CODE_ERROR);
  AddSpan(mes, 4);  // no order attributes

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
  SpanLogStage(verbose).Process(*batch);
}

TEST(SpanLogStageTest, ListsAreCappedAndKeysConfigurable) {
  pb::collector::trace::v1::ExportTraceServiceRequest req;
  auto* rs = AddResource(&req, "crm");
  for (uint8_t i = 1; i <= 12; ++i) {
    SetString(AddSpan(rs, i)->add_attributes(), "shop.order", "O-" + std::to_string(i));
  }
  auto batch = Decode(req);
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
  SpanLogStage(SpanLogOptions{}).Process(*batch);
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
