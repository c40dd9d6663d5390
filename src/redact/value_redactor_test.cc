#include "redact/value_redactor.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"

namespace ordertrace::redact {
namespace {

std::unique_ptr<ValueRedactor> Make(RedactionRules rules = {}) {
  auto p = Pseudonymizer::Create({PseudonymKey{"k1", std::string(32, 'k')}}).value();
  auto r = ValueRedactor::Create(std::move(rules), "order.id", p);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return std::move(r).value();
}

std::string Attr(const ValueRedactor& r, std::string_view key, std::string_view value) {
  std::string out;
  switch (r.RedactAttribute(key, value, &out)) {
    case Action::kKept:
      return std::string(value);
    case Action::kChanged:
      return out;
    case Action::kDropped:
      return "<dropped>";
  }
  return "?";
}

TEST(ValueRedactor, KeysArePseudonymisedDroppedOrKept) {
  auto r = Make();
  const std::string partner = Attr(*r, "partner.id", "P-1001");
  EXPECT_EQ(partner, "pse:k1:PUDB3rHJRRXEtd977SpJcA");  // Python hmac, see pseudonym_test.cc
  EXPECT_EQ(Attr(*r, "partner.id", partner), partner);  // a second gateway keeps it
  EXPECT_EQ(Attr(*r, "http.request.header.authorization", "Bearer abc"), "<dropped>");
  EXPECT_EQ(Attr(*r, "order.id", "89123456789"), "89123456789");  // safe, never scanned
  EXPECT_EQ(Attr(*r, "service.name", "a@b.ru"), "a@b.ru");
  EXPECT_EQ(Attr(*r, "app.note", "nothing personal"), "nothing personal");
}

TEST(ValueRedactor, EmailsFoldCaseWhetherByKeyOrInText) {
  auto r = Make();
  const std::string by_key = Attr(*r, "enduser.id", "Ivan@Example.com");
  EXPECT_EQ(by_key, Attr(*r, "user.email", "ivan@example.com"));
  EXPECT_EQ(Attr(*r, "app.note", "mail Ivan@Example.COM now"), "mail " + by_key + " now");
}

TEST(ValueRedactor, PhonesWrittenTwoWaysGiveOnePseudonym) {
  auto r = Make();
  const std::string a = Attr(*r, "app.note", "+7 912 345 67 89");
  EXPECT_EQ(a, Attr(*r, "app.note", "8 (912) 345-67-89"));
  EXPECT_EQ(a, "pse:k1:-L9LLuIFgqNvm9KHXqTtKQ");  // HMAC over "phone" 0x1F "+79123456789"
}

TEST(ValueRedactor, CardsAndTokensAreMasked) {
  auto r = Make();
  EXPECT_EQ(Attr(*r, "exception.message", "card 4111 1111 1111 1111 declined"),
            "card [card:redacted] declined");
  EXPECT_EQ(Attr(*r, "app.header", "Bearer abcdefghijklmnop1234"), "Bearer [token:redacted]");
}

TEST(ValueRedactor, TruncatedValuesLoseTheirTail) {
  auto r = Make();
  // A card cut by the attribute limit: its remaining digits are no card any more, so the tail
  // goes whatever it holds.
  const std::string text = std::string(100, 'x') + " 4111 1111 11";
  std::string out;
  ASSERT_EQ(r->RedactText(text, true, &out), Action::kChanged);
  EXPECT_EQ(out.find("4111"), std::string::npos);
  EXPECT_EQ(out, std::string(100 - (kTruncationTailBytes - 13), 'x') + "[truncated]");
  // UTF-8 is never split.
  std::string two_byte;
  for (int i = 0; i < 40; ++i) two_byte += "\xd0\x9f";
  ASSERT_EQ(r->RedactText(two_byte, true, &out), Action::kChanged);
  EXPECT_EQ((out.size() - std::string("[truncated]").size()) % 2, 0u);
}

TEST(ValueRedactor, ConfigErrors) {
  auto p = Pseudonymizer::Create({PseudonymKey{"k1", std::string(32, 'k')}}).value();
  RedactionRules rules;
  rules.pseudonymise_keys.push_back("order.id");
  auto r = ValueRedactor::Create(rules, "order.id", p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("entity key 'order.id'"), std::string::npos);
  rules = RedactionRules{};
  rules.drop_keys.push_back("partner.id");
  EXPECT_FALSE(ValueRedactor::Create(rules, "order.id", p).ok());
  rules = RedactionRules{};
  rules.safe_keys.push_back("user.id");
  EXPECT_FALSE(ValueRedactor::Create(rules, "order.id", p).ok());
}

TEST(ValueRedactor, CountsByDetectorNeverValues) {
  auto r = Make();
  Attr(*r, "a", "a@b.ru and +7 912 345 67 89 and 4111111111111111");
  Attr(*r, "partner.id", "P-1");
  Attr(*r, "client.address", "10.0.0.1");
  const auto& c = r->counters();
  EXPECT_EQ(c.by_detector(Detector::kEmail).Value(), 1u);
  EXPECT_EQ(c.by_detector(Detector::kPhone).Value(), 1u);
  EXPECT_EQ(c.by_detector(Detector::kCard).Value(), 1u);
  EXPECT_EQ(c.pseudonymised_by_key().Value(), 1u);
  EXPECT_EQ(c.dropped_by_key().Value(), 1u);
}

// The counters on /metrics, shared by the redactor that replaces another (a key rotation), so
// they never go backwards; every label pair is there from the start, and no value ever is.
TEST(ValueRedactor, CountersAreExportedAndSurviveAReplacedRedactor) {
  metrics::Registry registry;
  auto counters = std::make_shared<RedactionCounters>(registry);
  const std::string before = registry.Serialize();
  for (const char* line :
       {"{action=\"pseudonymised\",detector=\"key\"} 0", "{action=\"dropped\",detector=\"key\"} 0",
        "{action=\"pseudonymised\",detector=\"email\"} 0",
        "{action=\"pseudonymised\",detector=\"phone\"} 0",
        "{action=\"pseudonymised\",detector=\"iban\"} 0", "{action=\"masked\",detector=\"card\"} 0",
        "{action=\"masked\",detector=\"jwt\"} 0", "{action=\"masked\",detector=\"bearer\"} 0"}) {
    EXPECT_NE(before.find(std::string("ordertrace_redaction_values_total") + line),
              std::string::npos)
        << line << "\n"
        << before;
  }
  auto k1 = Pseudonymizer::Create({PseudonymKey{"k1", std::string(32, 'k')}}).value();
  auto first = ValueRedactor::Create(RedactionRules{}, "order.id", k1, counters).value();
  Attr(*first, "partner.id", "P-secret-1");
  Attr(*first, "app.note", "write to Secret.Person@example.org");
  auto k2 = Pseudonymizer::Create({PseudonymKey{"k2", std::string(32, 'q')},
                                   PseudonymKey{"k1", std::string(32, 'k')}})
                .value();
  auto second = ValueRedactor::Create(RedactionRules{}, "order.id", k2, counters).value();
  Attr(*second, "partner.id", "P-secret-2");
  Attr(*second, "app.note", "card 4111 1111 1111 1111");
  std::string out;
  EXPECT_EQ(second->RedactText("x" + std::string(100, 'y'), true, &out), Action::kChanged);
  const std::string after = registry.Serialize();
  EXPECT_NE(after.find("ordertrace_redaction_values_total{action=\"pseudonymised\",detector="
                       "\"key\"} 2"),
            std::string::npos)
      << after;
  EXPECT_NE(after.find("ordertrace_redaction_values_total{action=\"pseudonymised\",detector="
                       "\"email\"} 1"),
            std::string::npos);
  EXPECT_NE(after.find("ordertrace_redaction_values_total{action=\"masked\",detector=\"card\"} 1"),
            std::string::npos);
  EXPECT_NE(after.find("ordertrace_redaction_truncated_values_total 1"), std::string::npos);
  for (const char* secret : {"P-secret", "Secret.Person", "secret.person", "4111"}) {
    EXPECT_EQ(after.find(secret), std::string::npos) << secret;
  }
}

// The debug mode's observer hears which rule fired where, never the value.
TEST(ValueRedactor, TheObserverHearsTheRuleTheCarrierAndTheKeyNeverTheValue) {
  std::vector<std::string> heard;
  RedactionObserver observer = [&heard](const RuleFired& f) {
    heard.push_back(std::string(CarrierName(f.carrier)) + " " + std::string(f.key) + " " +
                    (f.rule == KeyRule::kPseudonymise ? "pseudonymise"
                     : f.rule == KeyRule::kDrop       ? "drop"
                                                      : DetectorName(f.detector)));
  };
  auto p = Pseudonymizer::Create({PseudonymKey{"k1", std::string(32, 'k')}}).value();
  auto r = ValueRedactor::Create(RedactionRules{}, "order.id", p, nullptr, observer).value();
  std::string out;
  SetCarrier(Carrier::kResourceAttribute);
  r->RedactAttribute("partner.id", "P-7", &out);
  SetCarrier(Carrier::kSpanAttribute);
  r->RedactAttribute("client.address", "10.1.2.3", &out);
  SetCarrier(Carrier::kEventAttribute);
  r->RedactAttribute("exception.message", "a@b.org or +7 912 345 67 89", &out);
  SetCarrier(Carrier::kSpanAttribute);
  r->RedactAttribute("order.id", "a@b.org", &out);  // safe: silent
  SetCarrier(Carrier::kLinkAttribute);
  r->RedactAttribute("app.note", "nothing here", &out);
  SetCarrier(Carrier::kStatusMessage);
  r->RedactText("Bearer abcdefghijklmnop1234", false, &out);
  SetCarrier(Carrier::kSpanName);
  r->RedactText("to 4111 1111 1111 1111", false, &out);
  EXPECT_EQ(heard, (std::vector<std::string>{
                       "resource_attribute partner.id pseudonymise",
                       "span_attribute client.address drop",
                       "event_attribute exception.message email",
                       "event_attribute exception.message phone",
                       "status_message  bearer",
                       "span_name  card",
                   }));
}

// The log observer writes at most its rate a second, says how many it left out, and withholds
// a key the sender chose when it could hold personal data.
TEST(ValueRedactor, TheDebugLogObserverIsRateLimitedAndWithholdsHostileKeys) {
  ASSERT_TRUE(log::Init("debug", log::Format::kLogfmt));
  RedactionObserver observer = DebugLogObserver(5);
  RedactionObserver copy = observer;  // copies share one limit
  RuleFired f;
  f.carrier = Carrier::kSpanAttribute;
  f.key = "mail.of.ivan@example.org";
  f.detector = Detector::kEmail;
  testing::internal::CaptureStderr();
  for (int i = 0; i < 1000; ++i) (i % 2 ? copy : observer)(f);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  f.key = "partner.id";
  f.rule = KeyRule::kPseudonymise;
  observer(f);
  const std::string logged = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(log::Init("info", log::Format::kLogfmt));
  size_t lines = 0;
  for (size_t at = logged.find("redaction rule fired"); at != std::string::npos;
       at = logged.find("redaction rule fired", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 6u) << logged;
  EXPECT_EQ(logged.find("ivan"), std::string::npos) << logged;
  EXPECT_NE(logged.find("key=(withheld)"), std::string::npos) << logged;
  EXPECT_NE(logged.find("carrier=span_attribute"), std::string::npos) << logged;
  EXPECT_NE(logged.find("detector=email"), std::string::npos) << logged;
  EXPECT_NE(logged.find("rule=pseudonymise_key detector=key key=partner.id not_logged=995"),
            std::string::npos)
      << logged;
}

}  // namespace
}  // namespace ordertrace::redact
