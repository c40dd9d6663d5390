#include "redact/redacting_decoder.h"

#include <gtest/gtest.h>

#include "support/otlp_requests.h"

namespace ordertrace::redact {
namespace {

using testing_support::RequestBuilder;
using testing_support::SpanBuilder;

std::shared_ptr<const ValueRedactor> Redactor() {
  auto p = Pseudonymizer::Create({PseudonymKey{"k1", std::string(32, 'k')}}).value();
  return ValueRedactor::Create(RedactionRules{}, "order.id", p).value();
}

std::string Request(const std::string& name, const std::string& partner) {
  RequestBuilder b;
  b.Resource("crm").Scope("s").Add(SpanBuilder(name)
                                       .Ids(std::string(16, '\x01'), std::string(8, '\x02'))
                                       .Times(1, 2)
                                       .Attr("order.id", "ORD-1")
                                       .Attr("partner.id", partner));
  return b.Serialized();
}

TEST(RedactingDecoder, DecodesARedactedRequestAndACleanOneAsItCame) {
  metrics::Registry registry;
  RedactingDecoder decoder(Redactor(), &registry);
  auto dirty =
      decoder.Decode(Request("mail a.b@example.org", "P-1"), otlp::Protocol::kHttpJson, {});
  ASSERT_TRUE(dirty.ok()) << dirty.status().message();
  const otlp::SpanBatch& b = **dirty;
  EXPECT_EQ(b.protocol(), otlp::Protocol::kHttpJson);
  EXPECT_EQ(b.wire().find("a.b@example.org"), std::string::npos);
  EXPECT_EQ(b.wire().find("P-1"), std::string::npos);
  ASSERT_EQ(b.spans().size(), 1u);
  EXPECT_EQ(std::string(b.spans()[0].name).rfind("mail pse:k1:", 0), 0u);
  otlp::AnyValueView order;
  ASSERT_TRUE(b.FindAttribute(b.spans()[0], "order.id", &order));
  EXPECT_EQ(order.str, "ORD-1");

  const std::string already = Redactor()->pseudonymizer().Pseudonym("partner", "P-1");
  const std::string clean_wire = Request("publish", already);
  auto clean = decoder.Decode(clean_wire, otlp::Protocol::kGrpc, {});
  ASSERT_TRUE(clean.ok());
  EXPECT_EQ((*clean)->wire(), clean_wire);  // nothing to redact: the bytes as they came
  const std::string text = registry.Serialize();
  EXPECT_NE(text.find("ordertrace_redaction_batches_total{result=\"redacted\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("ordertrace_redaction_batches_total{result=\"clean\"} 1"), std::string::npos);
}

TEST(RedactingDecoder, AMalformedRequestGetsTheDecodersError) {
  RedactingDecoder decoder(Redactor(), nullptr);
  std::string wire = Request("mail a.b@example.org", "P-1");
  wire.resize(wire.size() - 3);
  auto with = decoder.Decode(wire, otlp::Protocol::kGrpc, {});
  auto plain = otlp::DecodeExportRequest(wire, otlp::Protocol::kGrpc, {});
  ASSERT_FALSE(with.ok());
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(with.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(with.status().message(), plain.status().message());
}

TEST(RedactingDecoder, AValueOverTheLimitIsCutWithItsTail) {
  // A phone number straddling the limit: the decoder alone would keep its first digits.
  otlp::Limits limits;
  limits.max_attribute_value_bytes = 100;
  const std::string value = std::string(95, 'x') + " +7 912 555 01 23 and more";
  RequestBuilder b;
  b.Resource("crm").Scope("s").Add(SpanBuilder("op")
                                       .Ids(std::string(16, '\x01'), std::string(8, '\x02'))
                                       .Times(1, 2)
                                       .Attr("note", value));
  RedactingDecoder decoder(Redactor(), nullptr);
  auto batch = decoder.Decode(b.Serialized(), otlp::Protocol::kGrpc, limits);
  ASSERT_TRUE(batch.ok());
  otlp::AnyValueView v;
  ASSERT_TRUE((*batch)->FindAttribute((*batch)->spans()[0], "note", &v));
  EXPECT_EQ(std::string(v.str).find("+7"), std::string::npos);
  EXPECT_EQ(std::string(v.str).find("912"), std::string::npos);
  EXPECT_NE(std::string(v.str).find("[truncated]"), std::string::npos);
  EXPECT_LE(v.str.size(), limits.max_attribute_value_bytes);
}

// The same inside an array value (the decoder cuts nested strings at the limit too).
TEST(RedactingDecoder, ANestedValueOverTheLimitIsCutWithItsTail) {
  otlp::Limits limits;
  limits.max_attribute_value_bytes = 100;
  const std::string value = std::string(95, 'x') + " +7 912 555 01 23 and more";
  RequestBuilder b;
  b.Resource("crm").Scope("s").Add(
      SpanBuilder("op")
          .Ids(std::string(16, '\x01'), std::string(8, '\x02'))
          .Times(1, 2)
          .Attr("notes", testing_support::ArrayValue({testing_support::StringValue("short"),
                                                      testing_support::StringValue(value)})));
  RedactingDecoder decoder(Redactor(), nullptr);
  auto batch = decoder.Decode(b.Serialized(), otlp::Protocol::kGrpc, limits);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ((*batch)->wire().find("+7 9"), std::string::npos);
  EXPECT_EQ((*batch)->wire().find("912"), std::string::npos);
  EXPECT_NE((*batch)->wire().find("[truncated]"), std::string::npos);
  EXPECT_NE((*batch)->wire().find("short"), std::string::npos);
}

TEST(RedactingDecoder, WithoutARedactorEverythingPassesUntilOneIsSet) {
  RedactingDecoder decoder(nullptr, nullptr);
  const std::string wire = Request("mail a.b@example.org", "P-1");
  auto before = decoder.Decode(wire, otlp::Protocol::kGrpc, {});
  ASSERT_TRUE(before.ok());
  EXPECT_EQ((*before)->wire(), wire);
  decoder.SetRedactor(Redactor());
  auto after = decoder.Decode(wire, otlp::Protocol::kGrpc, {});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)->wire().find("a.b@example.org"), std::string::npos);
}

}  // namespace
}  // namespace ordertrace::redact
