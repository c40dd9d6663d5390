#include "common/values.h"

#include <gtest/gtest.h>

namespace ordertrace {
namespace {

using namespace std::chrono_literals;

// Moved here from config_test with the parsers (same assertions).
TEST(Values, ParseHostPort) {
  auto hp = ParseHostPort("127.0.0.1:4317");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 4317);
  hp = ParseHostPort("[::1]:0");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "::1");
  EXPECT_EQ(hp->port, 0);
  EXPECT_EQ(FormatHostPort(*hp), "[::1]:0");
  EXPECT_EQ(FormatHostPort({"localhost", 80}), "localhost:80");
  for (const char* bad : {"", ":", "host:", "host:-1", "ho st:1", "[::1]", "[::1]80", "[]:1",
                          "[zz]:1", "[1.2.3.4]:1", "a:b:c", "host:1x"}) {
    EXPECT_FALSE(ParseHostPort(bad).ok()) << bad;
  }
}

TEST(Values, ParseSizeAndDuration) {
  EXPECT_EQ(ParseSize("0").value(), 0u);
  EXPECT_EQ(ParseSize("512KiB").value(), 512u * 1024);
  EXPECT_EQ(ParseSize("16 MiB").value(), 16u << 20);
  EXPECT_EQ(ParseSize("2gib").value(), 2ull << 30);
  EXPECT_EQ(ParseSize("10MB").value(), 10'000'000u);
  EXPECT_EQ(ParseSize("3KB").value(), 3000u);
  EXPECT_EQ(ParseSize("7B").value(), 7u);
  for (const char* bad : {"", "MiB", "1.5MiB", "-1", "16XB", "16 Mi B"}) {
    EXPECT_FALSE(ParseSize(bad).ok()) << bad;
  }
  EXPECT_EQ(ParseDuration("500ms").value(), 500ms);
  EXPECT_EQ(ParseDuration("1s").value(), 1s);
  EXPECT_EQ(ParseDuration("2m").value(), 2min);
  EXPECT_EQ(ParseDuration("1h").value(), 1h);
  EXPECT_EQ(ParseDuration("5d").value(), 120h);
  EXPECT_EQ(ParseDuration("0").value(), 0ms);
  EXPECT_EQ(ParseDuration("0s").value(), 0ms);
  for (const char* bad : {"", "1", "s", "1.5s", "1D", "-1s", "1 sec", "1w", "00x"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
  EXPECT_EQ(ParseDuration("1w").status().message(),
            "expected a duration like 500ms, 30s, 2m, 1h or 5d, got '1w'");
  EXPECT_EQ(FormatDuration(0ms), "0s");
  EXPECT_EQ(FormatDuration(1500ms), "1500ms");
  EXPECT_EQ(FormatDuration(30s), "30s");
  EXPECT_EQ(FormatDuration(90min), "90m");
  EXPECT_EQ(FormatDuration(24h), "1d");
  EXPECT_EQ(FormatDuration(30h), "30h");
  for (const char* yes : {"true", "Yes", "on"}) EXPECT_TRUE(ParseBool(yes).value()) << yes;
  for (const char* no : {"false", "NO", "off"}) EXPECT_FALSE(ParseBool(no).value()) << no;
  EXPECT_EQ(ParseBool("maybe").status().message(), "expected true or false, got 'maybe'");
  EXPECT_EQ(FormatSize(16u << 20), "16MiB");
  EXPECT_EQ(FormatSize(1u << 30), "1GiB");
  EXPECT_EQ(FormatSize(2048), "2KiB");
  EXPECT_EQ(FormatSize(1500), "1500");
  EXPECT_EQ(FormatSize(0), "0");
}

TEST(Values, ParseUintTakesDigitsOnly) {
  EXPECT_EQ(ParseUint("0"), 0u);
  EXPECT_EQ(ParseUint("18446744073709551615"), UINT64_MAX);
  for (const char* bad : {"", " 1", "1 ", "+1", "-1", "0x10", "1e3", "18446744073709551616"}) {
    EXPECT_FALSE(ParseUint(bad).has_value()) << bad;
  }
}

TEST(Values, UnknownKeyMessageSuggestsACloseKey) {
  EXPECT_EQ(UnknownKeyMessage("fromat", {"level", "format", "spans"}),
            "unknown key (did you mean 'format'?)");
  EXPECT_EQ(UnknownKeyMessage("colour", {"level", "format"}),
            "unknown key; known keys here: level, format");
}

}  // namespace
}  // namespace ordertrace
