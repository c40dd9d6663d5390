#include "cli/token.h"

#include <gtest/gtest.h>

#include <set>

#include "receive/ingest_auth.h"

namespace ordertrace::cli {
namespace {

TEST(TokenTest, ThirtyTwoRandomBytesInBase64UrlAndTheirDigest) {
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    auto t = NewIngestToken();
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->token.size(), 43u);  // 256 bits, unpadded
    EXPECT_EQ(t->token.find_first_not_of(
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              std::string::npos);
    EXPECT_EQ(t->sha256, receive::Sha256Hex(t->token));
    EXPECT_TRUE(seen.insert(t->token).second);
  }
}

TEST(TokenTest, TheFormatCarriesAConfigLine) {
  IngestToken t;
  t.token = "tok";
  t.sha256 = std::string(64, 'c');
  const std::string out = FormatIngestToken(t, "crm");
  EXPECT_EQ(out.rfind("token:  tok\nsha256: " + t.sha256 + "\n", 0), 0u);
  EXPECT_NE(out.find("- {name: crm, sha256: " + t.sha256 + ", services: [crm]}"),
            std::string::npos);
}

}  // namespace
}  // namespace ordertrace::cli
