// The wire-level redaction of whole OTLP requests: canaries in every carrier are gone, the
// expected pseudonyms are there, everything else is unchanged, and the output decodes.
#include "redact/wire_redactor.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>

#include "otlp/decoder.h"
#include "support/otlp_requests.h"

namespace ordertrace::redact {
namespace {

using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
using opentelemetry::proto::common::v1::AnyValue;
using opentelemetry::proto::trace::v1::Status;
using testing_support::Attribute;
using testing_support::RequestBuilder;
using testing_support::SpanBuilder;

constexpr char kEmail[] = "Canary.Person@Example.org";
constexpr char kPhone[] = "+7 912 555 01 23";
constexpr char kCard[] = "4111 1111 1111 1111";
constexpr char kIban[] = "DE89 3704 0044 0532 0130 00";
constexpr char kPartner[] = "P-CANARY-42";

std::unique_ptr<ValueRedactor> Redactor() {
  auto p = Pseudonymizer::Create({PseudonymKey{"k1", std::string(32, 'k')}}).value();
  return ValueRedactor::Create(RedactionRules{}, "order.id", p).value();
}

AnyValue ArrayOf(std::initializer_list<const char*> items) {
  AnyValue v;
  for (const char* s : items) v.mutable_array_value()->add_values()->set_string_value(s);
  return v;
}

AnyValue MapOf(const std::string& key, const std::string& value) {
  AnyValue v;
  auto* kv = v.mutable_kvlist_value()->add_values();
  kv->set_key(key);
  kv->mutable_value()->set_string_value(value);
  return v;
}

const std::string kTrace = std::string(16, '\x01');
const std::string kSpan = std::string(8, '\x02');

std::string CanaryRequest() {
  const std::string free_text =
      std::string("mail ") + kEmail + ", call " + kPhone + ", card " + kCard + ", iban " + kIban;
  RequestBuilder b;
  b.Resource("crm", {Attribute("partner.id", kPartner), Attribute("host.note", free_text)});
  b.Scope("scope", "1.0");
  b.scope().mutable_scope()->add_attributes()->CopyFrom(Attribute("scope.note", free_text).kv);
  SpanBuilder s(std::string("order for ") + kEmail);
  s.Ids(kTrace, kSpan)
      .Times(1'700'000'000'000'000'000, 1'700'000'001'000'000'000)
      .Attr("order.id", "ORD-89123456789")
      .Attr("enduser.id", kEmail)
      .Attr("partner.id", int64_t{100042})
      .Attr("app.list", ArrayOf({kEmail, "plain", kPhone}))
      .Attr("app.map", MapOf("inner", free_text))
      .Attr("app.partner_map", MapOf("partner.id", kPartner))
      .Attr("http.request.header.authorization", "Bearer abcdefghijklmnopqrstuvwxyz")
      .Attr("client.address", "10.1.2.3")
      .Event("exception", 1'700'000'000'500'000'000,
             {Attribute("exception.message", "failed for " + free_text)})
      .Link(std::string(16, '\x03'), std::string(8, '\x04'), {Attribute("link.note", free_text)})
      .Status(Status::STATUS_CODE_ERROR, "declined: " + free_text);
  b.Add(s);
  return b.Serialized();
}

TEST(RedactExportRequest, EveryCarrierIsCleanAndTheRestUnchanged) {
  auto r = Redactor();
  const std::string in = CanaryRequest();
  auto out = RedactExportRequest(in, *r);
  ASSERT_TRUE(out.ok()) << out.status().message();
  ASSERT_TRUE(out->has_value());
  const std::string& wire = **out;
  for (const std::string canary :
       {"Canary.Person", "canary.person", "912 555", "9125550123", "4111 1111", "4111111111111111",
        "DE89 3704", "DE89370400440532013000", kPartner, "100042", "abcdefghijklmnop",
        "10.1.2.3"}) {
    EXPECT_EQ(wire.find(canary), std::string::npos) << canary;
  }
  const Pseudonymizer& p = r->pseudonymizer();
  EXPECT_NE(wire.find(p.Pseudonym("email", "canary.person@example.org")), std::string::npos);
  EXPECT_NE(wire.find(p.Pseudonym("phone", "+79125550123")), std::string::npos);
  EXPECT_NE(wire.find(p.Pseudonym("iban", "DE89370400440532013000")), std::string::npos);
  EXPECT_NE(wire.find(p.Pseudonym("partner", kPartner)), std::string::npos);
  EXPECT_NE(wire.find(p.Pseudonym("partner", "100042")), std::string::npos);

  ExportTraceServiceRequest req;
  ASSERT_TRUE(req.ParseFromString(wire));
  const auto& span = req.resource_spans(0).scope_spans(0).spans(0);
  EXPECT_EQ(span.trace_id(), kTrace);
  EXPECT_EQ(span.span_id(), kSpan);
  EXPECT_EQ(span.start_time_unix_nano(), 1'700'000'000'000'000'000u);
  EXPECT_EQ(span.status().code(), Status::STATUS_CODE_ERROR);
  EXPECT_EQ(span.links(0).trace_id(), std::string(16, '\x03'));
  // The entity key is never touched, though its value looks like a phone.
  bool found_order = false;
  for (const auto& kv : span.attributes()) {
    if (kv.key() == "order.id") {
      EXPECT_EQ(kv.value().string_value(), "ORD-89123456789");
      found_order = true;
    }
    EXPECT_NE(kv.key(), "http.request.header.authorization");
    EXPECT_NE(kv.key(), "client.address");
  }
  EXPECT_TRUE(found_order);
  EXPECT_EQ(req.resource_spans(0).resource().attributes(0).value().string_value(), "crm");
  EXPECT_EQ(req.resource_spans(0).scope_spans(0).scope().name(), "scope");

  // The decoder reads it as one valid span.
  auto batch = otlp::DecodeExportRequest(wire, otlp::Protocol::kHttpProtobuf, otlp::Limits{});
  ASSERT_TRUE(batch.ok()) << batch.status().message();
  EXPECT_EQ((*batch)->spans().size(), 1u);
  EXPECT_EQ((*batch)->refused_spans(), 0u);
}

TEST(RedactExportRequest, CleanRequestsAreLeftAsTheyAre) {
  auto r = Redactor();
  RequestBuilder b;
  b.Resource("crm").Scope("s").Add(SpanBuilder("publish order")
                                       .Ids(kTrace, kSpan)
                                       .Times(1, 2)
                                       .Attr("order.id", "ORD-1")
                                       .Attr("messaging.system", "rabbitmq")
                                       .Attr("app.count", int64_t{4111111111111111}));
  auto out = RedactExportRequest(b.Serialized(), *r);
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE(out->has_value());
}

TEST(RedactExportRequest, SecondGatewayChangesNothing) {
  auto r = Redactor();
  auto first = RedactExportRequest(CanaryRequest(), *r);
  ASSERT_TRUE(first.ok() && first->has_value());
  auto second = RedactExportRequest(**first, *r);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->has_value()) << "a redacted request must pass a second gateway unchanged";
}

TEST(RedactExportRequest, MalformedInputIsAnErrorNeverACrash) {
  auto r = Redactor();
  const std::string good = CanaryRequest();
  std::mt19937 rng(11);
  for (int i = 0; i < 3000; ++i) {
    std::string bad = good.substr(0, rng() % good.size());
    if (!bad.empty() && (i & 1)) bad[rng() % bad.size()] = static_cast<char>(rng());
    auto out = RedactExportRequest(bad, *r);
    if (out.ok() && out->has_value()) {
      ExportTraceServiceRequest req;
      EXPECT_TRUE(req.ParseFromString(**out));
    }
  }
}

// The debug mode's observer is told where each rule fired: every carrier of the canary request,
// and never a value.
TEST(RedactExportRequest, TheObserverHearsEveryCarrier) {
  std::set<std::string> heard;
  std::string all;
  RedactionObserver observer = [&](const RuleFired& f) {
    heard.insert(CarrierName(f.carrier));
    all += std::string(f.key) + " ";
  };
  auto p = Pseudonymizer::Create({PseudonymKey{"k1", std::string(32, 'k')}}).value();
  auto r = ValueRedactor::Create(RedactionRules{}, "order.id", p, nullptr, observer).value();
  ASSERT_TRUE(RedactExportRequest(CanaryRequest(), *r).ok());
  EXPECT_EQ(heard, (std::set<std::string>{"resource_attribute", "scope_attribute", "span_attribute",
                                          "event_attribute", "link_attribute", "span_name",
                                          "status_message"}));
  for (const char* canary : {kEmail, kPartner, "4111", "+7 912"}) {
    EXPECT_EQ(all.find(canary), std::string::npos) << canary;
  }
}

}  // namespace
}  // namespace ordertrace::redact
