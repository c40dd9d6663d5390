#include "common/url.h"

#include <gtest/gtest.h>

namespace ordertrace::url {
namespace {

TEST(Url, PercentDecode) {
  std::string out;
  EXPECT_TRUE(PercentDecode("ORD%2F42%20x", &out));
  EXPECT_EQ(out, "ORD/42 x");
  EXPECT_TRUE(PercentDecode("a+b", &out));
  EXPECT_EQ(out, "a+b");
  EXPECT_TRUE(PercentDecode("a+b", &out, /*plus_is_space=*/true));
  EXPECT_EQ(out, "a b");
  EXPECT_FALSE(PercentDecode("%4", &out));
  EXPECT_FALSE(PercentDecode("%", &out));
  EXPECT_FALSE(PercentDecode("%zz", &out));
}

TEST(Url, PercentEncodeRoundTrips) {
  const std::string raw = "ORD/42 ü?&=#";
  const std::string enc = PercentEncode(raw);
  EXPECT_EQ(enc.find_first_of("/ ?&=#"), std::string::npos);
  std::string back;
  ASSERT_TRUE(PercentDecode(enc, &back));
  EXPECT_EQ(back, raw);
}

TEST(Url, ParseQuery) {
  QueryParams q;
  std::string error;
  ASSERT_TRUE(ParseQuery("stuck=true&stage=SUBMITTED&service=m+e%73&&limit=", &q, &error));
  EXPECT_EQ(q.Get("stuck").value(), "true");
  EXPECT_EQ(q.Get("service").value(), "m es");
  EXPECT_EQ(q.Get("limit").value(), "");
  EXPECT_FALSE(q.Get("cursor").has_value());
  EXPECT_FALSE(ParseQuery("stage=%G1", &q, &error));
  EXPECT_EQ(error, "malformed percent-escape in query parameter 'stage'");
}

}  // namespace
}  // namespace ordertrace::url
