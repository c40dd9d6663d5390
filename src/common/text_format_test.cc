#include "common/text_format.h"

#include <gtest/gtest.h>

namespace ordertrace {
namespace {

TEST(TimeFormat, Rfc3339) {
  constexpr int64_t kT = 1'700'000'000'123'456'789;  // 2023-11-14T22:13:20.123456789Z
  EXPECT_EQ(Rfc3339(kT), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(Rfc3339(kT, /*millis=*/false), "2023-11-14T22:13:20Z");
  EXPECT_EQ(Rfc3339(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(Rfc3339(-1), "1969-12-31T23:59:59.999Z");  // truncated towards the past
}

TEST(TextFormat, Rfc3339OrEmptyLeavesZeroEmpty) {
  EXPECT_EQ(Rfc3339OrEmpty(0), "");
  EXPECT_EQ(Rfc3339OrEmpty(1'700'000'000'123'456'789), "2023-11-14T22:13:20.123Z");
}

TEST(TextFormat, HumanDuration) {
  using namespace std::chrono_literals;
  EXPECT_EQ(HumanDuration(0ms), "0s");
  EXPECT_EQ(HumanDuration(250ms), "250ms");
  EXPECT_EQ(HumanDuration(42s), "42s");
  EXPECT_EQ(HumanDuration(65min), "1h 5m");
  EXPECT_EQ(HumanDuration(51h), "2d 3h");
}

TEST(TextFormat, ClockTimeAndThousands) {
  constexpr Nanos kT = 1'700'000'000'000'000'000;  // 2023-11-14T22:13:20Z
  EXPECT_EQ(ClockTime(kT, kT + 60'000'000'000), "22:13:20Z");
  EXPECT_EQ(ClockTime(kT, kT + 7200'000'000'000), "2023-11-14T22:13:20Z");
  EXPECT_EQ(WithThousands(1204), "1,204");
}

TEST(TextFormat, Join) {
  EXPECT_EQ(Join({}, ", "), "");
  EXPECT_EQ(Join({"k1"}, ","), "k1");
  EXPECT_EQ(Join({"k2", "k1", "k0"}, ","), "k2,k1,k0");
  EXPECT_EQ(Join({"a", "b"}, ", "), "a, b");
}

}  // namespace
}  // namespace ordertrace
