#include "redact/detect.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace ordertrace::redact {
namespace {

struct Hit {
  std::string detector, text, normalised;
  bool operator==(const Hit& o) const {
    return detector == o.detector && text == o.text && normalised == o.normalised;
  }
};
std::ostream& operator<<(std::ostream& os, const Hit& h) {
  return os << "{" << h.detector << " '" << h.text << "' → '" << h.normalised << "'}";
}

std::vector<Hit> Hits(std::string_view text, std::string_view region = "RU") {
  ScanOptions o;
  o.region = FindPhoneRegion(region).value();
  std::vector<Hit> out;
  for (const Finding& f : Scan(text, o)) {
    EXPECT_LT(f.begin, f.end);
    EXPECT_LE(f.end, text.size());
    out.push_back(Hit{DetectorName(f.detector), std::string(text.substr(f.begin, f.end - f.begin)),
                      f.normalised});
  }
  return out;
}

TEST(Luhn, ValidAndInvalid) {
  EXPECT_TRUE(LuhnValid("4111111111111111"));
  EXPECT_TRUE(LuhnValid("5555555555554444"));
  EXPECT_TRUE(LuhnValid("378282246310005"));
  EXPECT_FALSE(LuhnValid("4111111111111112"));
  EXPECT_FALSE(LuhnValid(""));
  EXPECT_FALSE(LuhnValid("41111111111x1111"));
}

TEST(Iban, ValidAndInvalid) {
  EXPECT_TRUE(IbanValid("DE89370400440532013000"));
  EXPECT_TRUE(IbanValid("GB82WEST12345698765432"));
  EXPECT_FALSE(IbanValid("DE89370400440532013001"));  // one digit changed
  EXPECT_FALSE(IbanValid("DE8937040044053201300"));   // one short for DE
  EXPECT_FALSE(IbanValid("ZZ89370400440532013000"));  // no such country
}

TEST(Scan, Emails) {
  EXPECT_EQ(Hits("contact Ivan.Petrov+orders@Example.COM today"),
            (std::vector<Hit>{
                {"email", "Ivan.Petrov+orders@Example.COM", "ivan.petrov+orders@example.com"}}));
  EXPECT_EQ(Hits("mail a@b.co."), (std::vector<Hit>{{"email", "a@b.co", "a@b.co"}}));
  EXPECT_TRUE(Hits("user@localhost, @handle, a@b, x@-y.com, x@y.c0m").empty());
}

TEST(Scan, PhonesNormaliseToOneE164) {
  for (const char* text : {"+7 912 345 67 89", "8 (912) 345-67-89", "+7 (912) 345-67-89",
                           "89123456789", "912 345-67-89", "(912) 345-67-89", "7 912 345 67 89",
                           "+79123456789", "+7-912-345-67-89"}) {
    const auto hits = Hits(std::string("call ") + text + " now");
    ASSERT_EQ(hits.size(), 1u) << text;
    EXPECT_EQ(hits[0].detector, "phone") << text;
    EXPECT_EQ(hits[0].normalised, "+79123456789") << text;
    EXPECT_EQ(hits[0].text, text);
  }
  EXPECT_EQ(Hits("(8 912 345 67 89)"),
            (std::vector<Hit>{{"phone", "8 912 345 67 89", "+79123456789"}}));
  EXPECT_EQ(Hits("tel:+4915112345678"),
            (std::vector<Hit>{{"phone", "+4915112345678", "+4915112345678"}}));
  EXPECT_EQ(Hits("(212) 555-0123", "US"),
            (std::vector<Hit>{{"phone", "(212) 555-0123", "+12125550123"}}));
}

TEST(Scan, IdsTimestampsDatesAndVersionsAreNotPhonesOrCards) {
  for (const char* text : {
           "4bf92f3577b34da6a3ce929d0e0e4736",      // trace id
           "00f067aa0ba902b7",                      // span id
           "550e8400-e29b-41d4-a716-446655440000",  // UUID
           "12345678-1234-4111-1111-111111111111",  // all-digit UUID shape
           "1733500000123456789",                   // Unix nanoseconds
           "1733500000",                            // Unix seconds
           "2026-12-06 16:33:29",                   // date and time
           "2026-12-06T16:33:29.123Z",
           "06.12.2026",
           "v1.2.3",
           "10.123.45.67",
           "ORD-89123456789",
           "order A-1 qty 1234567890123",
           "msg-0000000001",
           "amount 4111111111111111.00EUR",
       }) {
    EXPECT_TRUE(Hits(text).empty())
        << text << ": " << (Hits(text).empty() ? "" : Hits(text)[0].text);
  }
}

TEST(Scan, CardsAreLuhnAndIssuerChecked) {
  EXPECT_EQ(Hits("paid with 4111 1111 1111 1111."),
            (std::vector<Hit>{{"card", "4111 1111 1111 1111", ""}}));
  EXPECT_EQ(Hits("card=5555-5555-5555-4444"),
            (std::vector<Hit>{{"card", "5555-5555-5555-4444", ""}}));
  EXPECT_EQ(Hits("amex 378282246310005"), (std::vector<Hit>{{"card", "378282246310005", ""}}));
  EXPECT_TRUE(Hits("4111 1111 1111 1112").empty());  // Luhn fails
  // A card after other numbers in one run is still found.
  EXPECT_EQ(Hits("qty 12 4111 1111 1111 1111"),
            (std::vector<Hit>{{"card", "4111 1111 1111 1111", ""}}));
}

TEST(Scan, Ibans) {
  EXPECT_EQ(Hits("IBAN DE89 3704 0044 0532 0130 00 please"),
            (std::vector<Hit>{{"iban", "DE89 3704 0044 0532 0130 00", "DE89370400440532013000"}}));
  EXPECT_EQ(Hits("gb82west12345698765432"),
            (std::vector<Hit>{{"iban", "gb82west12345698765432", "GB82WEST12345698765432"}}));
  EXPECT_TRUE(Hits("DE89 3704 0044 0532 0130 01").empty());
}

// The first passes work 16 bytes at a time: a datum at any offset, across any chunk boundary and
// in the last bytes, is still found.
TEST(Scan, FindingsAtEveryOffset) {
  const ScanOptions options;
  const std::string kinds[] = {"DE89 3704 0044 0532 0130 00", "a.b@example.org", "+7 912 555 01 23",
                               "4111 1111 1111 1111"};
  for (const std::string& datum : kinds) {
    for (size_t offset = 0; offset < 40; ++offset) {
      for (const std::string& after :
           {std::string(), std::string(" and ") + std::string(20, 'z')}) {
        const std::string text = std::string(offset, 'x') + " " + datum + after;
        const std::vector<Finding> found = Scan(text, options);
        ASSERT_EQ(found.size(), 1u) << "offset " << offset << ": " << text;
        EXPECT_EQ(text.substr(found[0].begin, found[0].end - found[0].begin), datum);
      }
    }
  }
}

TEST(Scan, TokensAreFound) {
  const std::string jwt =
      "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl";
  EXPECT_EQ(Hits("token " + jwt + " end"), (std::vector<Hit>{{"jwt", jwt, ""}}));
  EXPECT_EQ(Hits("Authorization: Bearer abcDEF0123456789xyz=="),
            (std::vector<Hit>{{"bearer", "abcDEF0123456789xyz==", ""}}));
  EXPECT_EQ(Hits("bearer " + jwt), (std::vector<Hit>{{"jwt", jwt, ""}}));
  EXPECT_TRUE(Hits("bearer short").empty());
  EXPECT_TRUE(Hits("the eyJ prefix alone").empty());
}

TEST(Scan, SeveralFindingsInOrderWithoutOverlap) {
  const auto hits = Hits("a@b.ru, +7 912 345 67 89; 4111111111111111 / DE89370400440532013000");
  ASSERT_EQ(hits.size(), 4u);
  EXPECT_EQ(hits[0].detector, "email");
  EXPECT_EQ(hits[1].detector, "phone");
  EXPECT_EQ(hits[2].detector, "card");
  EXPECT_EQ(hits[3].detector, "iban");
}

TEST(Scan, RegionsAreKnownByCode) {
  EXPECT_TRUE(FindPhoneRegion("ru").ok());
  auto unknown = FindPhoneRegion("XX");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("known: RU"), std::string::npos);
}

// Hostile shapes: long runs of the characters each scanner keys on.  The scanners are linear, so
// these finish at once; a quadratic one would take minutes here (nothing is timed: a slow run
// shows as a test that takes long, not as a failure).
TEST(Scan, HostileInputsEndAndFindingsStayInBounds) {
  const std::vector<std::string> inputs = {
      std::string(32768, '@'),
      std::string(32768, '1'),
      std::string(32768, '+'),
      [] {
        std::string s;
        while (s.size() < 32768) s += "eyJ";
        return s;
      }(),
      [] {
        std::string s;
        while (s.size() < 32768) s += "1 ";
        return s;
      }(),
      [] {
        std::string s;
        while (s.size() < 32768) s += "a@";
        return s;
      }(),
      [] {
        std::string s;
        while (s.size() < 32768) s += "DE89 ";
        return s;
      }(),
      [] {
        std::string s;
        while (s.size() < 32768) s += "bearer ";
        return s;
      }(),
  };
  for (const std::string& in : inputs) Hits(in);
  std::mt19937 rng(7);
  const std::string alphabet = "0123456789 +-().@aZeyJ\xd0\x9f:/_";
  for (int i = 0; i < 2000; ++i) {
    std::string s(rng() % 200, ' ');
    for (char& c : s) c = alphabet[rng() % alphabet.size()];
    Hits(s);
  }
}

}  // namespace
}  // namespace ordertrace::redact
