#include "redact/value_redactor.h"

#include <gtest/gtest.h>

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
  EXPECT_EQ(c.by_detector[static_cast<size_t>(Detector::kEmail)].load(), 1u);
  EXPECT_EQ(c.by_detector[static_cast<size_t>(Detector::kPhone)].load(), 1u);
  EXPECT_EQ(c.by_detector[static_cast<size_t>(Detector::kCard)].load(), 1u);
  EXPECT_EQ(c.pseudonymised_by_key.load(), 1u);
  EXPECT_EQ(c.dropped_by_key.load(), 1u);
}

}  // namespace
}  // namespace ordertrace::redact
