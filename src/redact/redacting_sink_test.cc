#include "redact/redacting_sink.h"

#include <gtest/gtest.h>

#include "otlp/decoder.h"
#include "support/otlp_requests.h"
#include "support/recording_sink.h"

namespace ordertrace::redact {
namespace {

using testing_support::RequestBuilder;
using testing_support::SpanBuilder;

std::shared_ptr<const ValueRedactor> Redactor() {
  auto p = Pseudonymizer::Create({PseudonymKey{"k1", std::string(32, 'k')}}).value();
  return ValueRedactor::Create(RedactionRules{}, "order.id", p).value();
}

std::shared_ptr<const otlp::SpanBatch> Batch(const std::string& name, const std::string& partner,
                                             otlp::Protocol protocol) {
  RequestBuilder b;
  b.Resource("crm").Scope("s").Add(SpanBuilder(name)
                                       .Ids(std::string(16, '\x01'), std::string(8, '\x02'))
                                       .Times(1, 2)
                                       .Attr("order.id", "ORD-1")
                                       .Attr("partner.id", partner));
  return otlp::DecodeExportRequest(b.Serialized(), protocol, otlp::Limits{}).value();
}

TEST(RedactingSink, PassesARedactedBatchOnAndACleanOneAsItIs) {
  testing_support::RecordingSink next;
  metrics::Registry registry;
  RedactingSink sink(Redactor(), &next, &registry);
  auto dirty = Batch("mail a.b@example.org", "P-1", otlp::Protocol::kHttpJson);
  ASSERT_TRUE(sink.Accept(dirty).ok());
  const std::string already = Redactor()->pseudonymizer().Pseudonym("partner", "P-1");
  auto clean = Batch("publish", already, otlp::Protocol::kGrpc);
  ASSERT_TRUE(sink.Accept(clean).ok());
  const auto batches = next.batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_NE(batches[0], dirty);
  EXPECT_EQ(batches[0]->protocol(), otlp::Protocol::kHttpJson);
  EXPECT_EQ(batches[0]->wire().find("a.b@example.org"), std::string::npos);
  EXPECT_EQ(batches[0]->wire().find("P-1"), std::string::npos);
  ASSERT_EQ(batches[0]->spans().size(), 1u);
  EXPECT_EQ(std::string(batches[0]->spans()[0].name).rfind("mail pse:k1:", 0), 0u);
  EXPECT_EQ(batches[1], clean);  // nothing to redact: the same batch, no copy
  const std::string text = registry.Serialize();
  EXPECT_NE(text.find("ordertrace_redaction_batches_total{result=\"redacted\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("ordertrace_redaction_batches_total{result=\"clean\"} 1"), std::string::npos);
}

TEST(RedactingSink, ThrottlingFromBehindIsPassedBack) {
  testing_support::RecordingSink next;
  next.RefuseWith(Status::ResourceExhausted("full", 250));
  RedactingSink sink(Redactor(), &next, nullptr);
  const Status s = sink.Accept(Batch("mail a.b@example.org", "P-1", otlp::Protocol::kGrpc));
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
}

TEST(RedactingSink, WithoutARedactorEverythingPasses) {
  testing_support::RecordingSink next;
  RedactingSink sink(nullptr, &next, nullptr);
  auto dirty = Batch("mail a.b@example.org", "P-1", otlp::Protocol::kGrpc);
  ASSERT_TRUE(sink.Accept(dirty).ok());
  EXPECT_EQ(next.batches().at(0), dirty);
  sink.SetRedactor(Redactor());
  ASSERT_TRUE(sink.Accept(dirty).ok());
  EXPECT_NE(next.batches().at(1), dirty);
}

}  // namespace
}  // namespace ordertrace::redact
