#include "common/time_format.h"

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

}  // namespace
}  // namespace ordertrace
