#include "common/base64.h"

#include <gtest/gtest.h>

#include <string>

namespace ordertrace {
namespace {

// RFC 4648 §10's vectors (base64url and base64 agree on them), without padding.
TEST(Base64Url, EncodesTheRfcVectorsAndDecodesThemBack) {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64UrlEncode(plain), encoded);
    std::string appended = "x";
    Base64UrlAppend(plain, &appended);
    EXPECT_EQ(appended, "x" + encoded);
    std::string decoded;
    ASSERT_TRUE(Base64UrlDecode(encoded, &decoded)) << encoded;
    EXPECT_EQ(decoded, plain);
  }
  // The URL-safe alphabet's last two characters.
  EXPECT_EQ(Base64UrlEncode(std::string("\xfb\xff", 2)), "-_8");
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  std::string back;
  ASSERT_TRUE(Base64UrlDecode(Base64UrlEncode(all), &back));
  EXPECT_EQ(back, all);
}

}  // namespace
}  // namespace ordertrace
